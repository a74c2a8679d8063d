"""Regression checks of stored results against a baseline file, for quality and cost alike.

Baseline format (JSON, written by ``lina-bench check results --write-baseline``)::

    {"format": "lina-bench-results-baseline", "version": 1, "suite": "quality-smoke",
     "created_with": {...},
     "tolerances": {"fid": 0.001, "gmacs_per_image": 0.0, ...},
     "ignore_protocol": ["reference_sha256"],
     "rows": [{"job": "fid/toy[lina]", "evaluator": "fid", "metric": "fid", "protocol": {...},
               "value": 123.4, "unit": "1", "higher_is_better": false}, ...]}

A row's tolerance is relative: its own ``tolerance`` when it has one, else the ``tolerances`` entry
of its metric (an ``fnmatch`` pattern such as ``"geneval_*"`` works too), else the default: 0 (exact)
for counts (FLOPs, parameters, tokens) and :data:`DEFAULT_TOLERANCE` for the rest. The check is
direction-aware: a quality or speed metric fails only when it moves the bad way by more than its
tolerance (FID up, GenEval down); a change in the good direction passes. Counts, and metrics without
a direction, fail when they move either way (fewer FLOPs also means the model changed). A baseline
row with no current result, or whose current protocol differs, fails. Protocol fields named in
``ignore_protocol`` (at any depth) are left out of that comparison: e.g. the hash of reference
statistics that each machine rebuilds from the same images, whose last bits differ between processors.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import write_text_atomic
from lina_bench.api.schema import Result, canonical_json
from lina_bench.engine.provenance import git_revision, package_versions

FORMAT = "lina-bench-results-baseline"
DEFAULT_TOLERANCE = 0.01
COUNT_UNITS = {"GMACs", "params", "tokens", "count"}
TIMING_UNITS = {"ms", "s", "images/s", "tokens/s", "x"}  # machine-dependent: left out unless asked for
ROW_FIELDS = {"job": str, "evaluator": str, "metric": str, "protocol": dict, "value": (int, float), "unit": str}


def comparable(protocol: Any, ignore: tuple[str, ...] = ()) -> Any:
    """The protocol without ``path`` entries (where a file lies is not part of what makes numbers
    comparable, its content sha256 is, and a baseline must hold on another machine) nor ``ignore``'s."""
    if isinstance(protocol, dict):
        return {k: comparable(v, ignore) for k, v in protocol.items() if k != "path" and k not in ignore}
    return protocol


def default_tolerance(unit: str) -> float:
    return 0.0 if unit in COUNT_UNITS else DEFAULT_TOLERANCE


def write_baseline(path: Path, results: list[Result], suite: str | None, include_timings: bool = False) -> int:
    """Write the baseline of ``results`` (one row per job and metric); return the number of rows."""
    chosen = [r for r in results if include_timings or r.unit not in TIMING_UNITS]
    if not chosen:
        raise LinaBenchError("no results to take a baseline from" + (f" for suite {suite!r}" if suite else "")
                             + (" (timings are left out unless --include-timings)" if results else ""))
    chosen.sort(key=lambda r: (r.job, r.metric))
    rows = [{"job": r.job, "evaluator": r.evaluator, "metric": r.metric, "value": r.value, "unit": r.unit,
             "higher_is_better": r.higher_is_better, "protocol": comparable(r.protocol)} for r in chosen]
    tolerances = {r.metric: default_tolerance(r.unit) for r in chosen}
    head = {"format": FORMAT, "version": 1, "suite": suite,
            "created_with": {"versions": package_versions(), "git_revision": git_revision()},
            "tolerances": dict(sorted(tolerances.items())), "ignore_protocol": []}
    lines = ",\n  ".join(json.dumps(row, sort_keys=True) for row in rows)  # one row a line: readable diffs
    write_text_atomic(path, json.dumps(head, indent=1)[:-2] + f',\n "rows": [\n  {lines}\n ]\n}}\n')
    return len(rows)


def load_baseline(path: Path) -> dict[str, Any]:
    """Read and validate a baseline file; a bad file is a :class:`LinaBenchError` naming the row and field."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise LinaBenchError(f"baseline file not found: {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LinaBenchError(f"cannot read baseline {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("rows"), list):
        raise LinaBenchError(f"{path} is not a lina-bench results baseline (write one with "
                             "`lina-bench check results --write-baseline FILE`)")
    ignore = data.setdefault("ignore_protocol", [])
    if not isinstance(ignore, list) or not all(isinstance(k, str) for k in ignore):
        raise LinaBenchError(f"{path}: 'ignore_protocol' must be a list of protocol field names")
    tolerances = data.setdefault("tolerances", {})
    if not isinstance(tolerances, dict) or not all(_is_tolerance(v) for v in tolerances.values()):
        raise LinaBenchError(f"{path}: 'tolerances' must map metric names to non-negative numbers")
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict):
            raise LinaBenchError(f"{path}: row {i} is not an object")
        for name, kind in ROW_FIELDS.items():
            if not isinstance(row.get(name), kind) or isinstance(row.get(name), bool):
                raise LinaBenchError(f"{path}: row {i}: field {name!r} is missing or not a {_kind_name(kind)}")
        if "tolerance" in row and not _is_tolerance(row["tolerance"]):
            raise LinaBenchError(f"{path}: row {i}: field 'tolerance' must be a non-negative number")
        if row.get("higher_is_better") not in (True, False, None):
            raise LinaBenchError(f"{path}: row {i}: field 'higher_is_better' must be true, false or null")
    return data


def _is_tolerance(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return "number" if kind == (int, float) else {str: "string", dict: "object"}[kind]


@dataclass
class RowCheck:
    """One baseline row against the store: ``now`` is None when there is no current result."""

    job: str
    metric: str
    baseline: float
    now: float | None
    tolerance: float
    higher_is_better: bool | None
    two_sided: bool  # counts and metrics without a direction: a move either way counts
    problem: str | None = None  # missing result, changed protocol

    @property
    def change(self) -> float:
        """Relative change (now - baseline) / |baseline|; +-inf when the baseline is 0 and now is not."""
        if self.now is None or self.now == self.baseline:
            return 0.0
        return (self.now - self.baseline) / abs(self.baseline) if self.baseline else math.copysign(math.inf,
                                                                                                  self.now)

    @property
    def moved(self) -> bool:
        return self.problem is not None or self.change != 0.0

    @property
    def ok(self) -> bool:
        if self.problem is not None:
            return False
        if self.two_sided or self.higher_is_better is None:
            return abs(self.change) <= self.tolerance
        worse = -self.change if self.higher_is_better else self.change
        return worse <= self.tolerance


def tolerance_of(row: dict[str, Any], tolerances: dict[str, float]) -> float:
    """The row's own tolerance, else the first ``tolerances`` entry whose name or pattern matches its
    metric, else the default for its unit."""
    if "tolerance" in row:
        return float(row["tolerance"])
    for pattern, value in tolerances.items():
        if fnmatchcase(row["metric"], pattern):
            return float(value)
    return default_tolerance(row["unit"])


def _protocol_difference(before: dict, after: dict) -> str:
    keys = sorted(set(before) | set(after))
    changed = [k for k in keys if canonical_json(before.get(k)) != canonical_json(after.get(k))]
    return "protocol changed: " + ", ".join(changed)


def check_results(baseline: dict[str, Any], results: list[Result]) -> list[RowCheck]:
    """Every baseline row against the current ``results`` (matched by job and metric)."""
    current = {(r.job, r.metric): r for r in results}
    ignore = tuple(baseline["ignore_protocol"])
    checks = []
    for row in baseline["rows"]:
        found = current.get((row["job"], row["metric"]))
        check = RowCheck(row["job"], row["metric"], float(row["value"]), None if found is None else found.value,
                         tolerance_of(row, baseline["tolerances"]), row.get("higher_is_better"),
                         row["unit"] in COUNT_UNITS)
        if found is None:
            check.problem = "no current result"
        elif canonical_json(comparable(found.protocol, ignore)) != canonical_json(comparable(row["protocol"], ignore)):
            check.problem = _protocol_difference(row["protocol"], comparable(found.protocol, ignore))
        checks.append(check)
    return checks


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def diff_table(checks: list[RowCheck]) -> str:
    """A markdown table of the rows that moved (ready to post as a PR comment), failures first."""
    moved = sorted((c for c in checks if c.moved), key=lambda c: (c.ok, c.job, c.metric))
    lines = ["| job | metric | baseline | now | change | tolerance | verdict |", "|---|---|---|---|---|---|---|"]
    for c in moved:
        direction = {True: " (higher is better)", False: " (lower is better)", None: ""}[c.higher_is_better]
        change = c.problem or f"{100 * c.change:+.4g}%"
        verdict = "ok" if c.ok else "**FAIL**"
        lines.append(f"| `{c.job}` | {c.metric}{direction} | {_number(c.baseline)} | {_number(c.now)} | {change} "
                     f"| {100 * c.tolerance:g}% | {verdict} |")
    return "\n".join(lines)
