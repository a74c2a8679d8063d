"""Regression checks for CI: recompute the FLOP counts named in a baseline file and compare.

Baseline format (JSON, written by ``lina-bench check flops --write-baseline``)::

    {"format": "lina-bench-flops-baseline", "version": 1, "convention": "...", "created_with": {...},
     "rows": [{"name": "flops-t2i-1024px-w1536/lina", "variant": "lina", "options": {},
               "setting": {"dim": 1536, "num_heads": 16, "grid": [64, 64], "prefix": 1024, "batch": 1},
               "counter": "fvcore", "macs": 49993482240, "tolerance": 0.0}, ...]}

``tolerance`` is relative (0 = exact, the default); edit it per row to allow drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lina_bench.api.errors import JobFailed, LinaBenchError
from lina_bench.api.evaluator import EvalContext
from lina_bench.engine.provenance import git_revision, package_versions
from lina_bench.engine.runner import measure, prepare
from lina_bench.engine.suite import Entry, Job, Suite, command_job

FORMAT = "lina-bench-flops-baseline"


def count_macs(job: Job) -> tuple[int, dict[str, Any]]:
    """Exact MACs of one ``flops`` job, counted on the path every measurement takes, and the
    evaluator's protocol (setting, counter, convention)."""
    result = measure(job, *prepare(job, "cpu"), EvalContext())
    report, _ = result.details
    return report.total, result.protocol["evaluator"]


def baseline_rows(suite: Suite) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per (attention variant, ``flops`` evaluator) job of ``suite``, counted now, and the
    counting conventions they use."""
    rows, conventions = [], []
    for job in suite.jobs():
        if job.evaluator.name != "flops":
            continue
        macs, protocol = count_macs(job)
        setting = {k: protocol[k] for k in ("dim", "num_heads", "grid", "prefix", "batch")}
        rows.append({"name": job.name, "variant": job.variant.name, "options": job.variant.options,
                     "setting": setting, "counter": protocol["counter"],
                     "elementwise": bool(job.evaluator.options.get("elementwise", False)), "macs": macs,
                     "tolerance": 0.0})
        conventions.append(protocol["convention"])
    if not rows:
        raise LinaBenchError(f"suite {suite.name!r} has no 'flops' evaluator jobs to take a baseline from")
    return rows, sorted(set(conventions))


def write_baseline(path: Path, suite: Suite) -> int:
    rows, conventions = baseline_rows(suite)
    convention = conventions[0] if len(conventions) == 1 else conventions
    data = {"format": FORMAT, "version": 1, "convention": convention, "suite": suite.name,
            "created_with": {"versions": package_versions(), "git_revision": git_revision()}, "rows": rows}
    header = json.dumps({k: v for k, v in data.items() if k != "rows"}, indent=1)[:-2]
    lines = ",\n  ".join(json.dumps(row) for row in rows)  # one row a line: readable diffs
    path.write_text(f'{header},\n "rows": [\n  {lines}\n ]\n}}\n')
    return len(rows)


@dataclass
class RowCheck:
    name: str
    baseline: int
    now: int | None
    tolerance: float
    error: str | None = None

    @property
    def change(self) -> float:
        return (self.now - self.baseline) / self.baseline if self.now is not None and self.baseline else 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and abs(self.change) <= self.tolerance


def load_baseline(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise LinaBenchError(f"baseline file not found: {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise LinaBenchError(f"cannot read baseline {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("rows"), list):
        raise LinaBenchError(f"{path} is not a lina-bench FLOPs baseline (write one with --write-baseline)")
    required = {"name", "variant", "setting", "counter", "macs"}
    for i, row in enumerate(data["rows"]):
        missing = required - set(row) if isinstance(row, dict) else required
        if missing:
            raise LinaBenchError(f"{path}: row {i} lacks {', '.join(sorted(missing))}")
    return data["rows"]


def check_baseline(path: Path) -> list[RowCheck]:
    """Recount every row of the baseline; a row that cannot be counted is a failed row."""
    checks = []
    for row in load_baseline(path):
        tolerance = float(row.get("tolerance", 0.0))
        try:
            options = {**row["setting"], "counter": row["counter"], "elementwise": row.get("elementwise", False)}
            job = command_job("check", Entry("flops", options), Entry(row["variant"], row.get("options", {})),
                              "attention")
            checks.append(RowCheck(row["name"], int(row["macs"]), count_macs(job)[0], tolerance))
        except (LinaBenchError, JobFailed, TypeError) as exc:
            checks.append(RowCheck(row["name"], int(row["macs"]), None, tolerance, str(exc)))
    return checks
