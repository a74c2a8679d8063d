"""Out-of-bounds detection for Triton kernels run in Triton's CPU interpreter.

On a GPU an access outside a tensor is a CUDA "illegal memory access" at best and a silently wrong
number at worst; the interpreter reads and writes host memory without checking. :func:`bounds_checked`
patches the interpreter so that every active lane of every load and store must fall inside one of
the tensors passed to the launch (its own elements, from its first to its last byte), else the launch
fails with the kernel, the access and the nearest argument. Only for tests: it slows launches down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from triton.runtime import interpreter


class OutOfBounds(AssertionError):
    """A load or store touched memory outside every tensor argument of the launch."""


@dataclass(frozen=True)
class Extent:
    name: str
    start: int  # first byte
    end: int  # one past the last byte


def _extent(name: str, tensor: torch.Tensor) -> Extent:
    start = tensor.data_ptr()
    if tensor.numel() == 0:
        return Extent(name, start, start)
    last = sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride(), strict=True))
    return Extent(name, start, start + (last + 1) * tensor.element_size())


class _Launches:
    """The tensor extents of the launch running now, and every access checked."""

    def __init__(self) -> None:
        self.kernel = ""
        self.extents: list[Extent] = []
        self.accesses = 0

    def check(self, kind: str, ptrs, mask) -> None:
        addresses = np.broadcast_to(ptrs.data, np.broadcast_shapes(ptrs.data.shape, mask.data.shape))
        active = addresses[np.broadcast_to(mask.data, addresses.shape)].astype(np.uint64)
        if active.size == 0:
            return
        self.accesses += 1
        width = ptrs.get_element_ty().primitive_bitwidth // 8
        inside = np.zeros(active.shape, dtype=bool)
        for extent in self.extents:
            inside |= (active >= extent.start) & (active + width <= extent.end)
        if inside.all():
            return
        bad = int(active[~inside][0])
        nearest = min(self.extents, key=lambda e: min(abs(bad - e.start), abs(bad - e.end)), default=None)
        where = (f"{bad - nearest.end} bytes past the end of {nearest.name}" if bad >= nearest.end
                 else f"{nearest.start - bad} bytes before {nearest.name}" if bad < nearest.start
                 else f"straddling the end of {nearest.name}") if nearest else "with no tensor arguments"
        raise OutOfBounds(f"{self.kernel}: {kind} of {int((~inside).sum())} lane(s) outside every tensor "
                          f"argument, the first {where}")


@contextlib.contextmanager
def bounds_checked() -> Iterator[_Launches]:
    """Within the block, interpreted Triton launches fail with :class:`OutOfBounds` on any access
    outside their tensor arguments. Yields the record (``accesses``: checked loads and stores)."""
    launches = _Launches()
    builder = interpreter.InterpreterBuilder
    executor = interpreter.GridExecutor
    load, store, init_args = builder.create_masked_load, builder.create_masked_store, executor._init_args_hst

    def checked_load(self, ptrs, mask, *args, **kwargs):
        launches.check("load", ptrs, mask)
        return load(self, ptrs, mask, *args, **kwargs)

    def checked_store(self, ptrs, value, mask, *args, **kwargs):
        launches.check("store", ptrs, mask)
        return store(self, ptrs, value, mask, *args, **kwargs)

    def recording_init_args(self, args_dev, kwargs):
        args_hst, kwargs_hst = init_args(self, args_dev, kwargs)
        named = {**dict(zip(self.arg_names, args_hst, strict=False)), **kwargs_hst}  # the rest come as kwargs
        launches.kernel = self.fn.__name__
        launches.extents = [_extent(name, t) for name, t in named.items() if isinstance(t, torch.Tensor)]
        return args_hst, kwargs_hst

    builder.create_masked_load, builder.create_masked_store = checked_load, checked_store
    executor._init_args_hst = recording_init_args
    try:
        yield launches
    except Exception as exc:  # the interpreter (and autograd) wrap it: surface the check's own error
        cause = exc
        while cause is not None and not isinstance(cause, OutOfBounds):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from None
    finally:
        builder.create_masked_load, builder.create_masked_store = load, store
        executor._init_args_hst = init_args
