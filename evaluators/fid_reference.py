"""Reference statistics for FID: ADM reference batches and MAR-style ``fid_stats`` npz files.

ADM format (``VIRTUAL_imagenet256_labeled.npz``): ``mu``/``sigma`` (pool_3, 2048-d), ``mu_s``/
``sigma_s`` (sFID spatial features, 2023-d) and ``arr_0``, the reference images (N, H, W, 3) uint8
used for precision/recall. MAR format (``fid_stats/adm_in256_stats.npz``): ``mu``/``sigma`` only.
``lina-bench fid-ref build`` writes the ADM format.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import atomic_path, file_sha256
from lina_bench.evaluators.inception import FEATURE_DIMS

if TYPE_CHECKING:
    from lina_bench.evaluators.fid_sources import SampleSource


@dataclass
class Reference:
    """Loaded reference statistics; ``images`` (memory-mapped when possible) may be absent."""

    path: Path
    sha256: str
    mu: np.ndarray
    sigma: np.ndarray
    mu_s: np.ndarray | None = None
    sigma_s: np.ndarray | None = None
    images: np.ndarray | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return "adm" if self.mu_s is not None else "mar"

    def protocol(self) -> dict:
        return {"reference": self.path.name, "reference_sha256": self.sha256, "reference_format": self.kind,
                "reference_images": 0 if self.images is None else int(len(self.images))}


def _check(name: str, array: np.ndarray, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if array.shape != shape:
        raise LinaBenchError(f"{path}: '{name}' has shape {array.shape}, but the Inception extractor gives "
                             f"{shape}: the reference was made with other features and cannot be compared")
    if not np.isfinite(array).all():
        raise LinaBenchError(f"{path}: '{name}' contains NaN or inf")
    return array.astype(np.float64)


def load_reference(path: str | Path) -> Reference:
    """Read an ADM or MAR reference npz and check its dimensions against the extractor."""
    path = Path(path)
    if not path.is_file():
        raise LinaBenchError(f"reference statistics not found: {path} (an ADM reference batch such as "
                             "VIRTUAL_imagenet256_labeled.npz, a MAR fid_stats npz, or one made with "
                             "`lina-bench fid-ref build`)")
    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r")
        keys = set(data.files) if hasattr(data, "files") else set()
    except (OSError, ValueError) as exc:
        raise LinaBenchError(f"cannot read reference {path}: {exc}") from exc
    if not {"mu", "sigma"} <= keys:
        raise LinaBenchError(f"{path} lacks {sorted({'mu', 'sigma'} - keys)}: not FID reference statistics "
                             f"(keys: {sorted(keys)})")
    d, ds = FEATURE_DIMS["pool"], FEATURE_DIMS["spatial"]
    ref = Reference(path, file_sha256(path), _check("mu", data["mu"], (d,), path),
                    _check("sigma", data["sigma"], (d, d), path))
    if {"mu_s", "sigma_s"} <= keys:
        ref.mu_s = _check("mu_s", data["mu_s"], (ds,), path)
        ref.sigma_s = _check("sigma_s", data["sigma_s"], (ds, ds), path)
    if "arr_0" in keys:
        images = data["arr_0"]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise LinaBenchError(f"{path}: 'arr_0' must be uint8 (N, H, W, 3) images, got {images.dtype} "
                                 f"{images.shape}")
        ref.images = images
    return ref


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], images: SampleSource | None = None,
              batch_size: int = 50, order: np.ndarray | None = None) -> None:
    """An npz of ``arrays`` plus, from a sample source, ``arr_0`` (N, H, W, 3) uint8 streamed through a
    memory-mapped .npy (never all in memory); written atomically. With ``order`` (N,) sample indices,
    ``arr_0[p]`` is sample ``order[p]`` (the images are still drawn in index order)."""
    path = Path(path)
    tmp_dir = path.parent / f".{path.name}.parts"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    members = []
    for name, array in arrays.items():
        np.save(tmp_dir / f"{name}.npy", array)
        members.append(name)
    if images is not None:
        first = images.images([0])
        shape = (len(images), first.shape[2], first.shape[3], 3)
        out = np.lib.format.open_memmap(tmp_dir / "arr_0.npy", mode="w+", dtype=np.uint8, shape=shape)
        position = np.arange(len(images)) if order is None else np.argsort(order)
        for start in range(0, len(images), batch_size):
            stop = min(start + batch_size, len(images))
            out[position[start:stop]] = images.images(range(start, stop)).permute(0, 2, 3, 1).numpy()
        out.flush()
        del out
        members.append("arr_0")
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name in members:  # a fixed time stamp: the same arrays give the same file (and sha256)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with open(tmp_dir / f"{name}.npy", "rb") as source, archive.open(member, "w", force_zip64=True) as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            (tmp_dir / f"{name}.npy").unlink()
    tmp_dir.rmdir()


def write_reference(path: str | Path, mu: np.ndarray, sigma: np.ndarray, mu_s: np.ndarray, sigma_s: np.ndarray,
                    images: SampleSource | None = None, batch_size: int = 50) -> None:
    """ADM-format statistics, plus the images of a sample source as ``arr_0`` when given."""
    write_npz(path, {"mu": mu, "sigma": sigma, "mu_s": mu_s, "sigma_s": sigma_s}, images, batch_size)
