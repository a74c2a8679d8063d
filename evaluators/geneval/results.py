"""GenEval stage 3: verdicts for every image, ``results.jsonl`` in the official format, and the summary.

``results.jsonl`` has the official columns (filename, tag, prompt, correct, reason, metadata and
details, the last two as JSON strings) and is written with pandas as the official scorer writes
it, so the official ``summary_scores.py`` reads it. The summary follows that script: accuracy per
tag in order of first appearance, overall = the mean of the tag accuracies, % correct images, and
% correct prompts (a prompt is correct when any of its images is).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import atomic_path
from lina_bench.api.schema import Metric
from lina_bench.evaluators.geneval.detect import DetectionCache
from lina_bench.evaluators.geneval.scoring import (
    ScoringOptions,
    check_detections,
    decide,
    kept_objects,
)
from lina_bench.evaluators.prompt_folders import PromptImages

COLUMNS = ("filename", "tag", "prompt", "correct", "reason", "metadata", "details")


def result_row(filename: str, metadata: Mapping[str, Any], detections: Sequence[Mapping[str, Any]],
               options: ScoringOptions, object_names: Sequence[str] | None = None) -> dict[str, Any]:
    """One image's official result record; ``details`` lists every kept box per class
    (``[x1, y1, x2, y2, score]``), classes in object-name order when the names are given."""
    kept = kept_objects(detections, metadata["tag"], options)
    verdict = decide(metadata, kept, options)
    order = {name: i for i, name in enumerate(object_names or [])}
    classes = sorted(kept, key=lambda name: order.get(name, len(order)))
    details = {name: [k.row.tolist() for k in kept[name]] for name in classes}
    return {"filename": filename, "tag": metadata["tag"], "prompt": metadata["prompt"], "correct": verdict.correct,
            "reason": verdict.reason, "metadata": json.dumps(metadata), "details": json.dumps(details)}


def score_folder(prompts: list[PromptImages], cache: DetectionCache, options: ScoringOptions,
                 object_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Result records (one row per image) from the cached detections; missing ones are a clear error."""
    rows, missing = [], []
    for prompt in prompts:
        for image in prompt.images:
            entry = cache.load(prompt, image)
            if entry is None:
                missing.append(prompt.image_id(image))
                continue
            check_detections(entry["detections"], f"{cache.path(prompt, image)}: detections")
            rows.append(result_row(str(image), prompt.metadata, entry["detections"], options, object_names))
    if missing:
        raise LinaBenchError(f"no current detections for {len(missing)} image(s) (e.g. {', '.join(missing[:3])}) in "
                             f"{cache.folder}; run the detect stage first")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_results(path: str | Path, results: pd.DataFrame) -> Path:
    """``results.jsonl`` as the official scorer writes it (pandas records, one per line), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        results.to_json(tmp, orient="records", lines=True)
    return path


@dataclass
class Summary:
    images: int
    prompts: int
    correct_images: float
    correct_prompts: float
    tags: dict[str, dict[str, float]]  # tag -> accuracy, correct, total
    overall: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> list[Metric]:
        found = [Metric("geneval_overall", self.overall, "1", True),
                 Metric("geneval_correct_images", self.correct_images, "1", True),
                 Metric("geneval_correct_prompts", self.correct_prompts, "1", True)]
        return found + [Metric(f"geneval_{tag}", row["accuracy"], "1", True) for tag, row in self.tags.items()]

    def table(self) -> str:
        lines = [f"Total images: {self.images}", f"Total prompts: {self.prompts}",
                 f"% correct images: {self.correct_images:.2%}", f"% correct prompts: {self.correct_prompts:.2%}", ""]
        lines += [f"{tag:<16} = {row['accuracy']:.2%} ({int(row['correct'])} / {int(row['total'])})"
                  for tag, row in self.tags.items()]
        return "\n".join(lines + ["", f"Overall score (avg. over tasks): {self.overall:.5f}"])


def summarize(results: str | Path | pd.DataFrame) -> Summary:
    """The official summary of a ``results.jsonl`` (or its DataFrame)."""
    df = results if isinstance(results, pd.DataFrame) else pd.read_json(results, orient="records", lines=True)
    if df.empty:
        raise LinaBenchError("no results to summarise")
    tags = {}
    for tag, group in df.groupby("tag", sort=False):
        tags[str(tag)] = {"accuracy": float(group["correct"].mean()), "correct": int(group["correct"].sum()),
                          "total": len(group)}
    return Summary(images=len(df), prompts=int(df["metadata"].nunique()), correct_images=float(df["correct"].mean()),
                   correct_prompts=float(df.groupby("metadata")["correct"].any().mean()), tags=tags,
                   overall=float(sum(row["accuracy"] for row in tags.values()) / len(tags)))
