"""The registered kinds of things an evaluator measures: attention variants, generators and sample
folders. Each kind lists its jobs' entries from a suite, builds its target for a job and gives its part
of the protocol, so the runner and the suite validator need no branch per kind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import file_sha256, path_identity
from lina_bench.evaluators.base import AttentionTarget, TargetKind

NPZ, IMAGE_FOLDER, GENEVAL_FOLDER = "npz", "image-folder", "geneval-folder"


class AttentionKind(TargetKind):
    """An attention variant, built by the evaluator at the sizes it chooses."""

    name, section, noun, protocol_key = "attention", "attention", "attention variants", "variant"

    def entries(self, suite) -> list[tuple[str, dict[str, Any]]]:
        return [(v.label, {"generator": None, "variant": v}) for v in suite.attention]

    def build(self, job, device: str) -> AttentionTarget:
        return AttentionTarget(job.variant.name, job.variant.options)

    def protocol(self, target: AttentionTarget) -> dict[str, Any]:
        return {"name": target.name, "options": target.options}


class GeneratorKind(TargetKind):
    """A registered generator (and attention variant, for entries that list variants)."""

    name, section, noun, protocol_key = "generator", "generators", "generators", "generator"

    def entries(self, suite) -> list[tuple[str, dict[str, Any]]]:
        return [(g.label + (f"[{v.label}]" if v else ""), {"generator": g, "variant": v})
                for g in suite.generators for v in (g.attention or [None])]

    def build(self, job, device: str):
        from lina_bench.api.generator import build_generator

        options = dict(job.generator.options)
        if job.variant is not None:
            options["attention"] = job.variant.name
            if job.variant.options:
                options["attention_options"] = job.variant.options
        return build_generator(job.generator.name, options, job.generator.checkpoint).to(device)

    def protocol(self, target) -> dict[str, Any]:
        return target.info().as_protocol()


def samples_format(path: Path) -> str:
    """npz (ADM ``arr_0``), a GenEval folder (``<00000>/metadata.jsonl``) or a folder of images."""
    if path.is_file() and path.suffix == ".npz":
        return NPZ
    if path.is_dir():
        return GENEVAL_FOLDER if any(p.is_dir() and p.name.isdigit() for p in path.iterdir()) else IMAGE_FOLDER
    raise LinaBenchError(f"samples not found or not an .npz / folder: {path}")


def content_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (each relative name and its sha256, in name order)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


@dataclass
class Samples:
    """Images made elsewhere (e.g. the 50k samples an official sampler wrote on a cluster)."""

    name: str
    path: Path
    format: str

    @classmethod
    def open(cls, name: str, path: str | Path) -> "Samples":
        path = Path(path)
        return cls(name, path, samples_format(path))

    def require(self, *formats: str, what: str) -> Path:
        """The path, when it is in one of ``formats`` (else a clear error naming ``what`` needs)."""
        if self.format not in formats:
            raise LinaBenchError(f"{what} needs {' or '.join(formats)} samples; {self.path} is a {self.format}")
        return self.path

    def identity(self) -> dict[str, Any]:
        """Cheap identity for the job key: path, and size/mtime of the file or the newest file."""
        return path_identity(self.path)


class SamplesKind(TargetKind):
    """A suite's ``samples:`` entry ``{name, path}``: an ADM npz, an image folder or a GenEval folder."""

    name, section, noun, protocol_key = "samples", "samples", "sample folders", "samples"

    def entries(self, suite) -> list[tuple[str, dict[str, Any]]]:
        return [(s.label, {"generator": None, "variant": None, "samples": s}) for s in suite.samples]

    def job_config(self, fields: dict[str, Any]) -> dict[str, Any]:
        entry = fields["samples"]
        return {"samples": {"name": entry.name, **Samples.open(entry.name, entry.options["path"]).identity()}}

    def check(self, path: str) -> None:
        """Raise a clear error unless ``path`` holds samples (an npz or a folder)."""
        samples_format(Path(path))

    def build(self, job, device: str) -> Samples:
        return Samples.open(job.samples.name, job.samples.options["path"])

    def protocol(self, target: Samples) -> dict[str, Any]:
        return {"path": str(target.path.resolve()), "format": target.format, "sha256": content_sha256(target.path)}
