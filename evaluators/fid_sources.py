"""Where FID samples come from: a generator (sampled on the fly), an image folder, or an npz.

Every source yields uint8 (B, 3, H, W) batches for given sample indices, so shards can be taken
in any order by any process and images never pile up in memory.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.generator import Generator, sample_seed
from lina_bench.evaluators.fid_metrics import ADM_IS_SPLIT

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LINA_NPZ_SEED = 1337
LINA_NPZ_ORDER = "np.random.seed(1337); np.random.permutation(N) (LINA's create_npz_from_sample_folder)"
STORED_ORDER = "as stored"
log = logging.getLogger(__name__)


def lina_npz_order(count: int) -> np.ndarray:
    """(count,) sample indices in the order LINA's ``create_npz_from_sample_folder`` writes them to the
    ADM npz: position p holds sample ``order[p]`` (``np.random.seed(1337); np.random.permutation``)."""
    return np.random.RandomState(LINA_NPZ_SEED).permutation(count)


def classes_per_is_split(labels: np.ndarray) -> int:
    """The most distinct labels any consecutive ADM IS split of (N,) labels holds."""
    return max(len(np.unique(labels[start:start + ADM_IS_SPLIT])) for start in range(0, len(labels), ADM_IS_SPLIT))


class SampleSource(ABC):
    """``len(source)`` samples; ``images(indices)`` returns uint8 (B, 3, H, W) for those indices."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def images(self, indices: Sequence[int]) -> torch.Tensor: ...

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What makes the samples what they are (hashed into the shard cache key)."""

    def order(self) -> np.ndarray | None:
        """The order metrics and a saved npz see the samples in: (N,) sample indices, or None for
        sample-index order. It matters for ADM's Inception Score (consecutive splits) and KID's subsets."""
        return None

    @property
    def order_name(self) -> str:
        """How :meth:`order` arranges the samples, for the protocol."""
        return STORED_ORDER

    def labels(self) -> np.ndarray | None:
        """(N,) class label of each sample in :meth:`order`, when known."""
        return None


def check_images(images: torch.Tensor, where: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] != 3:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise LinaBenchError(f"{where} must give uint8 (B, 3, H, W) images, got {got}")
    return images


class GeneratorSource(SampleSource):
    """Class-conditional sampling: ``per_class`` samples of each class in label order 0, 0, ..., 1, ...
    (LINA's and MAR's sample numbering); sample i has seed ``sample_seed(seed, i)``.

    Metrics and ``--save-npz`` see the samples in LINA's npz order (:func:`lina_npz_order`), as
    LINA's ``create_npz_from_sample_folder`` writes them for ADM's evaluator: in label order each
    5000-sample IS split would see only 5000 / per_class classes and IS could not exceed that.
    """

    def __init__(self, generator: Generator, num_samples: int, seed: int) -> None:
        info = generator.info()
        if info.conditioning != "class" or not info.num_classes:
            raise LinaBenchError("FID sampling needs a class-conditional generator")
        if num_samples % info.num_classes:
            raise LinaBenchError(f"--num-samples ({num_samples}) must be a multiple of the number of classes "
                                 f"({info.num_classes}) so every class gets the same count")
        self.generator, self.num_samples, self.seed = generator, num_samples, seed
        self.per_class = num_samples // info.num_classes

    def __len__(self) -> int:
        return self.num_samples

    def label(self, index: int | np.ndarray) -> int | np.ndarray:
        """The class of sample ``index`` (or of an array of indices)."""
        return index // self.per_class

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        labels = [self.label(i) for i in indices]
        images = check_images(self.generator.sample(labels, [sample_seed(self.seed, i) for i in indices]),
                              "the generator")
        return images

    def order(self) -> np.ndarray:
        return lina_npz_order(self.num_samples)

    @property
    def order_name(self) -> str:
        return LINA_NPZ_ORDER

    def labels(self) -> np.ndarray:
        return self.label(self.order())

    def identity(self) -> dict[str, Any]:
        spec = self.generator.build_spec
        return {"generator": None if spec is None else {"name": spec.name, "options": spec.options,
                                                          "checkpoint": spec.checkpoint},
                "info": self.generator.info().as_protocol(), "num_samples": self.num_samples, "seed": self.seed,
                "label_order": "index // per_class"}


class NpzSource(SampleSource):
    """ADM-style sample batch: ``arr_0`` uint8 (N, H, W, 3), memory-mapped; class labels from ``labels``
    or ``arr_1`` (N,) when present."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            data = np.load(self.path, mmap_mode="r", allow_pickle=False)
            self.array = data["arr_0"]
            label_key = next((key for key in ("labels", "arr_1") if key in data.files), None)
            self._labels = None if label_key is None else np.asarray(data[label_key])
        except (OSError, KeyError, ValueError) as exc:
            raise LinaBenchError(f"cannot read samples from {self.path}: needs an 'arr_0' array ({exc})") from exc
        if self.array.dtype != np.uint8 or self.array.ndim != 4 or self.array.shape[-1] != 3:
            raise LinaBenchError(f"{self.path}: 'arr_0' must be uint8 (N, H, W, 3), got {self.array.dtype} "
                                 f"{self.array.shape}")
        if self._labels is not None and self._labels.shape != (len(self.array),):
            raise LinaBenchError(f"{self.path}: '{label_key}' must hold one label per image, shape "
                                 f"({len(self.array)},), got {self._labels.shape}")

    def labels(self) -> np.ndarray | None:
        return self._labels

    def __len__(self) -> int:
        return len(self.array)

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.array[list(indices)])).permute(0, 3, 1, 2).contiguous()

    def identity(self) -> dict[str, Any]:
        stat = self.path.stat()
        return {"npz": str(self.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class FolderSource(SampleSource):
    """Image files in a folder (sorted by name), converted to RGB."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise LinaBenchError(f"sample folder not found: {self.path}")
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise LinaBenchError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.path}")

    def __len__(self) -> int:
        return len(self.files)

    def images(self, indices: Sequence[int]) -> torch.Tensor:
        from PIL import Image

        arrays = []
        for i in indices:
            with Image.open(self.files[i]) as image:
                arrays.append(np.asarray(image.convert("RGB")))
        sizes = {a.shape for a in arrays}
        if len(sizes) > 1:
            raise LinaBenchError(f"images in {self.path} differ in size ({sorted(sizes)}); resize them first")
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def identity(self) -> dict[str, Any]:
        return {"folder": str(self.path.resolve()), "files": len(self.files),
                "latest_mtime_ns": max(p.stat().st_mtime_ns for p in self.files)}


def open_samples(path: str | Path) -> SampleSource:
    """An image folder or an ADM npz as a sample source (a GenEval folder has no FID samples)."""
    from lina_bench.evaluators.targets import IMAGE_FOLDER, NPZ, samples_format

    path = Path(path)
    found = samples_format(path)
    if found not in (NPZ, IMAGE_FOLDER):
        raise LinaBenchError(f"{path} is a {found}; FID needs an image folder or an .npz with arr_0")
    return NpzSource(path) if found == NPZ else FolderSource(path)
