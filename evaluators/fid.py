"""FID / sFID / IS / KID / precision-recall for a generator or a folder/npz of samples.

Protocol (the papers'): features from torch-fidelity's TF-faithful Inception
(:mod:`lina_bench.evaluators.inception`) against ADM reference batches or MAR ``fid_stats``.
Samples stream through in shards of ``shard_size`` consecutive sample indices; each finished shard's
features are written atomically with a sha256 beside them, so an interrupted run (even ``kill -9``)
resumes where it stopped and gives the same numbers. Under ``torchrun`` (any backend: NCCL on GPUs,
gloo on CPU) rank r takes the shards s with s % world == r; rank 0 merges and computes. A shard is
always extracted in the same batches, so features do not depend on the number of processes.

``frechet_distance(mu1, sigma1, mu2, sigma2)`` is the contract other checks call.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lina_bench.api.distributed import barrier, rank_and_world
from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import atomic_path, file_sha256, write_text_atomic
from lina_bench.api.generator import UINT8_CONVENTION, to_pil
from lina_bench.api.schema import Metric, canonical_json
from lina_bench.evaluators.base import EvalContext, Evaluator, Measurement
from lina_bench.evaluators.fid_metrics import (
    ADM_IS_SPLIT,
    IS_CONVENTIONS,
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from lina_bench.evaluators.fid_reference import Reference, write_npz
from lina_bench.evaluators.fid_sources import LINA_NPZ_ORDER, SampleSource, classes_per_is_split
from lina_bench.evaluators.inception import EXTRACTOR, InceptionFeatures

__all__ = ["Fid", "FidOptions", "compute_fid", "frechet_distance"]
FEATURES = ("pool", "logits", "spatial")
log = logging.getLogger(__name__)


@dataclass
class FidOptions:
    batch_size: int = 50
    shard_size: int = 1000
    is_convention: str = "adm"
    kid: bool = True
    precision_recall: bool = True
    save_png: Path | None = None  # folder for one PNG per sample
    save_npz: Path | None = None  # ADM-style sample batch (arr_0)

    def check(self) -> None:
        if self.batch_size < 1 or self.shard_size < 1:
            raise LinaBenchError("batch size and shard size must be >= 1")
        if self.is_convention not in IS_CONVENTIONS:
            raise LinaBenchError(f"--is-convention must be one of {', '.join(IS_CONVENTIONS)}")


@dataclass
class FidResult:
    metrics: list[Metric]
    protocol: dict[str, Any]


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Without it, glibc's heap fragments across Inception batches on CPU and the process's peak
    memory grows with the number of samples (1603 -> 1975 MiB for 100 -> 400 samples); with it the
    peak stays flat (1600 -> 1611 MiB).
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _shard_valid(path: Path) -> bool:
    checksum = path.with_suffix(".sha256")
    return path.is_file() and checksum.is_file() and checksum.read_text().strip() == file_sha256(path)


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """npz then its checksum, each through a temporary name and an atomic rename."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
        digest = file_sha256(tmp)
    write_text_atomic(path.with_suffix(".sha256"), digest + "\n")


class ShardedFeatures:
    """Features of one source, cached in shards under ``folder`` (see the module docstring)."""

    def __init__(self, source: SampleSource, extractor: InceptionFeatures, folder: Path, options: FidOptions,
                 label: str) -> None:
        self.source, self.extractor, self.folder, self.options, self.label = source, extractor, folder, options, label
        self.count = len(source)
        self.shards = [range(start, min(start + options.shard_size, self.count))
                       for start in range(0, self.count, options.shard_size)]

    def path(self, shard: int) -> Path:
        return self.folder / f"shard_{shard:06d}.npz"

    def compute(self, progress: bool) -> None:
        rank, world = rank_and_world()
        self.folder.mkdir(parents=True, exist_ok=True)
        mine = [s for s in range(len(self.shards)) if s % world == rank]
        todo = [s for s in mine if not _shard_valid(self.path(s))]
        total = sum(len(self.shards[s]) for s in mine)
        done = total - sum(len(self.shards[s]) for s in todo)
        with tqdm(total=total, initial=done, unit="sample", desc=f"{self.label} features",
                  disable=not progress or rank != 0, smoothing=0.1) as bar:
            for s in todo:
                _write_atomic(self.path(s), self._extract(self.shards[s], bar))

    def _extract(self, indices: range, bar: tqdm) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {name: [] for name in FEATURES}
        for start in range(indices.start, indices.stop, self.options.batch_size):
            batch = range(start, min(start + self.options.batch_size, indices.stop))
            images = self.source.images(batch)
            if len(images) != len(batch):
                raise LinaBenchError(f"{self.label}: asked for {len(batch)} images, got {len(images)}")
            self._save_images(batch, images)
            for name, value in self.extractor(images).items():
                parts[name].append(value.numpy())
            del images
            if not str(self.extractor.device).startswith("cuda"):
                release_freed_memory()
            bar.update(len(batch))
        return {name: np.concatenate(values) for name, values in parts.items()}

    def _save_images(self, indices: range, images: torch.Tensor) -> None:
        if self.options.save_png is None:
            return
        self.options.save_png.mkdir(parents=True, exist_ok=True)
        for i, image in zip(indices, images, strict=True):
            to_pil(image).save(self.options.save_png / f"{i:06d}.png")

    def load(self) -> dict[str, np.ndarray]:
        """All features in sample order (rank 0, after every shard is done)."""
        missing = [s for s in range(len(self.shards)) if not _shard_valid(self.path(s))]
        if missing:
            raise LinaBenchError(f"{self.label}: shards {missing[:5]} are missing or corrupt in {self.folder}")
        arrays: dict[str, list[np.ndarray]] = {name: [] for name in FEATURES}
        for s in range(len(self.shards)):
            with np.load(self.path(s)) as data:
                for name in FEATURES:
                    arrays[name].append(data[name])
        return {name: np.concatenate(values) for name, values in arrays.items()}


def feature_cache_folder(work_dir: Path, source: SampleSource, weights_sha: str, options: FidOptions) -> Path:
    key = {"source": source.identity(), "weights": weights_sha, "batch_size": options.batch_size,
           "shard_size": options.shard_size, "extractor": EXTRACTOR}
    return work_dir / "fid-features" / hashlib.sha256(canonical_json(key).encode()).hexdigest()[:20]


def compute_fid(source: SampleSource, reference: Reference, weights: str | Path, work_dir: str | Path,
                options: FidOptions, device: str = "cpu", progress: bool = True) -> FidResult | None:
    """Extract (or resume) the features of ``source`` and, on rank 0, compute the metrics.

    Returns None on ranks other than 0.
    """
    options.check()
    work_dir = Path(work_dir)
    extractor = InceptionFeatures(weights, device)
    weights_sha = file_sha256(Path(weights))
    samples = ShardedFeatures(source, extractor, feature_cache_folder(work_dir, source, weights_sha, options), options,
                              "samples")
    samples.compute(progress)
    ref_sharded = None
    if reference.images is not None and (options.kid or options.precision_recall):
        from lina_bench.evaluators.fid_sources import NpzSource

        ref_source = NpzSource(reference.path)
        ref_options = replace(options, save_png=None)  # --save-png is for the samples only
        ref_sharded = ShardedFeatures(ref_source, extractor,
                                      feature_cache_folder(work_dir, ref_source, weights_sha, ref_options),
                                      ref_options, "reference")
        ref_sharded.compute(progress)
    barrier()
    if rank_and_world()[0] != 0:
        return None
    order = source.order()
    features = samples.load()
    if order is not None:
        features = {name: value[order] for name, value in features.items()}
    ref_features = ref_sharded.load() if ref_sharded is not None else None
    labels = source.labels()
    if options.save_npz is not None:  # the samples are drawn again: deterministic, never all in memory
        write_npz(options.save_npz, {} if labels is None else {"arr_1": labels}, source, options.batch_size, order)
    if options.is_convention == "adm":
        _warn_blocked_labels(labels)
    metrics = _metrics(features, reference, ref_features, options)
    protocol = {**reference.protocol(), "extractor": EXTRACTOR, "inception_weights_sha256": weights_sha,
                "is_convention": options.is_convention, "num_samples": len(source),
                "seed": source.identity().get("seed"), "sample_order": source.order_name,
                "uint8_convention": UINT8_CONVENTION, "pr_neighbourhood": 3 if options.precision_recall else None,
                "kid": "poly3, 100 subsets of 1000" if options.kid and ref_features is not None else None}
    return FidResult(metrics, protocol)


def _warn_blocked_labels(labels: np.ndarray | None) -> None:
    """Warn when samples sorted by label leave each ADM IS split only some of the classes."""
    if labels is None or len(labels) < 2 or (np.diff(labels) < 0).any():
        return
    seen, classes = classes_per_is_split(labels), len(np.unique(labels))
    if seen < classes:
        log.warning("the samples are sorted by class label: each %d-sample Inception Score split (ADM convention) "
                    "sees only %d of %d classes, which caps IS near %d; shuffle them (LINA's npz order: %s) or "
                    "use --is-convention torch-fidelity", ADM_IS_SPLIT, seen, classes, seen, LINA_NPZ_ORDER)


def _metrics(features: dict[str, np.ndarray], reference: Reference, ref_features: dict[str, np.ndarray] | None,
             options: FidOptions) -> list[Metric]:
    pool = torch.from_numpy(features["pool"])
    mu, sigma = feature_statistics(pool)
    metrics = [Metric("fid", frechet_distance(mu, sigma, reference.mu, reference.sigma), "1", False)]
    if reference.mu_s is not None:
        mu_s, sigma_s = feature_statistics(torch.from_numpy(features["spatial"]))
        metrics.append(Metric("sfid", frechet_distance(mu_s, sigma_s, reference.mu_s, reference.sigma_s), "1",
                              False))
    is_mean, is_std = inception_score(torch.from_numpy(features["logits"]), options.is_convention)
    metrics += [Metric("inception_score", is_mean, "1", True), Metric("inception_score_std", is_std, "1")]
    if ref_features is not None:
        ref_pool = torch.from_numpy(ref_features["pool"])
        if options.kid:
            kid_mean, kid_std = kernel_inception_distance(pool, ref_pool)
            metrics += [Metric("kid", kid_mean, "1", False), Metric("kid_std", kid_std, "1")]
        if options.precision_recall:
            precision, recall = precision_recall(pool, ref_pool)
            metrics += [Metric("precision", precision, "1", True), Metric("recall", recall, "1", True)]
    return metrics


class Fid(Evaluator):
    """FID, sFID, IS, KID and precision/recall of a class-conditional generator or of samples made
    elsewhere (ADM npz or image folder), against reference statistics (ADM protocol)."""

    targets = ("generator", "samples")

    def __init__(self, ref: str, inception_weights: str, num_samples: int = 50000, batch_size: int = 50,
                 shard_size: int = 1000, is_convention: str = "adm", kid: bool = True,
                 precision_recall: bool = True, save_png: str | None = None, save_npz: str | None = None) -> None:
        from lina_bench.evaluators.fid_reference import load_reference
        from lina_bench.evaluators.inception import check_weights

        self.reference = load_reference(ref)
        self.weights = check_weights(inception_weights)
        self.num_samples = num_samples
        self.options = FidOptions(batch_size, shard_size, is_convention, kid, precision_recall,
                                  Path(save_png) if save_png else None, Path(save_npz) if save_npz else None)
        self.options.check()

    def protocol(self) -> dict[str, Any]:
        return {**self.reference.protocol(), "num_samples": self.num_samples, "is_convention":
                self.options.is_convention, "extractor": EXTRACTOR, "uint8_convention": UINT8_CONVENTION}

    def evaluate(self, target, context: EvalContext) -> Measurement:
        from lina_bench.evaluators.fid_sources import GeneratorSource, open_samples
        from lina_bench.evaluators.targets import Samples

        if isinstance(target, Samples):
            source = open_samples(target.path)
        else:
            source = GeneratorSource(target, self.num_samples, context.seed)
        result = compute_fid(source, self.reference, self.weights, context.work_dir or Path("."), self.options,
                             context.device, context.progress)
        return Measurement([], {}) if result is None else Measurement(result.metrics, result.protocol)
