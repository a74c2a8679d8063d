"""File helpers every part shares: content hashes, and writes that never leave half a file."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def path_identity(path: str | Path) -> dict[str, object]:
    """Cheap identity of a file or folder for job keys: resolved path, number of files, bytes and
    the newest modification time (no hashing)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return {"path": str(path.resolve()), "files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "latest_mtime_ns": max((p.stat().st_mtime_ns for p in files), default=0)}


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` (same suffix, so ``np.savez`` keeps it) to write to; it is
    renamed onto ``path`` when the block ends without error and removed otherwise, so a killed or
    failed writer never leaves half a file at ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
