"""Text-to-image inputs that GenEval and the CLIP score share: prompt files, and image folders in
GenEval's layout, ``<root>/<00000>/metadata.jsonl`` (the prompt's official metadata line) and
``<root>/<00000>/samples/<0000>.png``.

Reading follows the official scorer: prompt folders are the subfolders whose name is all digits,
samples are the files of ``samples/`` whose name matches ``\\d+\\.png`` at its start. Folders and
images are listed in numeric order (the official scorer takes ``os.listdir`` order; no score depends
on it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from lina_bench.api.errors import LinaBenchError
from lina_bench.evaluators.geneval.scoring import check_metadata

SAMPLE_NAME = re.compile(r"\d+\.png")
METADATA_FILE = "metadata.jsonl"


def prompt_folder(root: Path, prompt: int) -> Path:
    return root / f"{prompt:05d}"


def sample_path(root: Path, prompt: int, image: int) -> Path:
    return prompt_folder(root, prompt) / "samples" / f"{image:04d}.png"


@dataclass(frozen=True)
class PromptImages:
    """One prompt folder: its index (the folder name), metadata and sample images."""

    index: int
    folder: Path
    metadata: dict[str, Any]
    images: list[Path]

    def image_id(self, image: Path) -> str:
        """``<00000>/<0000>``: names an image inside the root, for caches and messages."""
        return f"{self.folder.name}/{image.stem}"


def _numeric(name: str) -> tuple[int, str]:
    return int(re.match(r"\d+", name).group()), name


def scan_images(root: str | Path) -> list[PromptImages]:
    """Every prompt folder of a GenEval image folder; clear errors for a missing or malformed one."""
    root = Path(root)
    if not root.is_dir():
        raise LinaBenchError(f"GenEval image folder not found: {root}")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: _numeric(p.name))
    if not folders:
        raise LinaBenchError(f"{root}: no prompt folders (<00000>/metadata.jsonl + samples/<0000>.png)")
    prompts = []
    for folder in folders:
        meta_path = folder / METADATA_FILE
        if not meta_path.is_file():
            raise LinaBenchError(f"{meta_path}: missing (each prompt folder needs its metadata line)")
        try:
            metadata = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LinaBenchError(f"{meta_path}: not valid JSON ({exc})") from None
        check_metadata(metadata, str(meta_path))
        samples = folder / "samples"
        images = sorted((p for p in samples.iterdir() if p.is_file() and SAMPLE_NAME.match(p.name)),
                        key=lambda p: _numeric(p.name)) if samples.is_dir() else []
        if not images:
            raise LinaBenchError(f"{samples}: no sample images (<0000>.png)")
        prompts.append(PromptImages(int(folder.name), folder, metadata, images))
    return prompts


def read_jsonl(path: Path) -> list[Any]:
    """Every non-empty line of a JSON-lines file; a bad line is reported with its number."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise LinaBenchError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return rows


def read_prompt_file(path: str | Path) -> list[str]:
    """Prompts of a GenEval metadata file (.jsonl) or of a text file (one per line)."""
    path = Path(path)
    if not path.is_file():
        raise LinaBenchError(f"prompt file not found: {path}")
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
        if not all(isinstance(r, dict) and isinstance(r.get("prompt"), str) for r in rows):
            raise LinaBenchError(f"{path}: every line needs a 'prompt' text")
        prompts = [r["prompt"] for r in rows]
    else:
        try:
            prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise LinaBenchError(f"{path}: not a text file (prompts: GenEval metadata .jsonl or one a line)") from None
    if not prompts:
        raise LinaBenchError(f"{path}: no prompts")
    return prompts


def read_image(path: Path) -> Image.Image:
    """An RGB image with its EXIF orientation applied (as the official scorer opens it)."""
    try:
        with Image.open(path) as handle:
            return ImageOps.exif_transpose(handle).convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise LinaBenchError(f"cannot read image {path}: {exc}") from None
