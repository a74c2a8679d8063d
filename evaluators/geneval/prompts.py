"""GenEval's prompt metadata, object names and optional prompt rewrites, read from the user's paths.

The project does not ship GenEval's data: ``evaluation_metadata.jsonl`` and ``object_names.txt``
come from the user's GenEval checkout (``prompts/``). Object names default to the file beside the
metadata file, as the checkout lays them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import file_sha256
from lina_bench.evaluators.geneval.scoring import check_metadata
from lina_bench.evaluators.prompt_folders import read_jsonl

OBJECT_NAMES_FILE = "object_names.txt"


def _need_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise LinaBenchError(f"{what} not found: {path}")
    return path


def object_names_path(metadata_path: str | Path, object_names: str | Path | None = None) -> Path:
    """``object_names`` if given, else ``object_names.txt`` beside the metadata file."""
    return Path(object_names) if object_names else Path(metadata_path).with_name(OBJECT_NAMES_FILE)


def load_object_names(path: str | Path) -> list[str]:
    """The detector's class names in class-index order (GenEval's ``object_names.txt``)."""
    path = _need_file(path, "GenEval object names file")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(names)) != len(names) or not names:
        raise LinaBenchError(f"{path}: expected one unique class name per line")
    return names


@dataclass(frozen=True)
class Prompts:
    """The evaluation prompts: ``metadata[i]`` is prompt i's official line; ``texts[i]`` is what the
    generator is given (the rewrite when one is used)."""

    metadata: list[dict[str, Any]]
    object_names: list[str]
    texts: list[str]
    source: dict[str, Any]  # file names and sha256s, recorded with every result

    @property
    def rewritten(self) -> bool:
        return self.source.get("rewrites") is not None


def load_prompts(metadata_path: str | Path, object_names: str | Path | None = None,
                 rewrites: str | Path | None = None) -> Prompts:
    """Read and check the metadata (every field, class and colour), the object names and the rewrites."""
    metadata_path = _need_file(metadata_path, "GenEval metadata file")
    names_path = object_names_path(metadata_path, object_names)
    names = load_object_names(names_path)
    metadata = read_jsonl(metadata_path)
    if not metadata:
        raise LinaBenchError(f"{metadata_path}: no prompts")
    known = set(names)
    for number, line in enumerate(metadata, start=1):
        where = f"{metadata_path}: prompt {number}"
        check_metadata(line, where)
        unknown = sorted({req["class"] for clause in ("include", "exclude") for req in line.get(clause, [])} - known)
        if unknown:
            raise LinaBenchError(f"{where}: unknown class name(s) {', '.join(map(repr, unknown))} "
                                 f"(not in {names_path})")
    source: dict[str, Any] = {"metadata": metadata_path.name, "metadata_sha256": file_sha256(metadata_path),
                              "prompts": len(metadata), "object_names_sha256": file_sha256(names_path),
                              "rewrites": None}
    texts = [line["prompt"] for line in metadata]
    if rewrites is not None:
        rewrites = _need_file(rewrites, "prompt rewrite file")
        texts = _rewritten_texts(rewrites, metadata)
        source.update(rewrites=rewrites.name, rewrites_sha256=file_sha256(rewrites))
    return Prompts(metadata, names, texts, source)


def _rewritten_texts(path: Path, metadata: list[dict[str, Any]]) -> list[str]:
    """Rewrites as a JSON object ``{original prompt: rewritten}``, or as a JSON-lines file aligned
    line by line with the metadata whose lines carry the rewritten text in ``prompt``."""
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
        if len(rows) != len(metadata):
            raise LinaBenchError(f"{path}: {len(rows)} lines, but the metadata has {len(metadata)} prompts")
        bad = [i + 1 for i, row in enumerate(rows)
               if not isinstance(row, dict) or not isinstance(row.get("prompt"), str)]
        if bad:
            raise LinaBenchError(f"{path}: line(s) {bad[:5]} have no 'prompt' text")
        return [row["prompt"] for row in rows]
    try:
        mapping = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LinaBenchError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise LinaBenchError(f"{path}: expected a JSON object mapping each original prompt to its rewrite")
    missing = [line["prompt"] for line in metadata if line["prompt"] not in mapping]
    if missing:
        raise LinaBenchError(f"{path}: no rewrite for {len(missing)} prompt(s), e.g. {missing[0]!r}")
    return [mapping[line["prompt"]] for line in metadata]
