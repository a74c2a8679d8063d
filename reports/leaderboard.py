"""The leaderboard: stored results as the tables people publish.

One row per (generator, checkpoint, attention variant); quality columns (FID, sFID, IS, precision,
recall, KID, GenEval per tag and overall, CLIP score) then cost columns (parameters, GFLOPs per
image and for the attention modules, latency, peak memory, throughput), whatever the results hold.
Attention-module measurements (no generator) go into a second table, one row per variant.

**Protocols are never mixed.** A column holds one metric under one *column protocol*: the
evaluator's part of the row's protocol plus the target's sampling settings (resolution, steps,
guidance, ...), i.e. the protocol without the fields that name the thing measured (generator
family, attention variant, samples path). When a metric comes under several column protocols, each
gets its own column whose header spells out the fields that differ (e.g. ``FID [reference=a.npz]``
beside ``FID [reference=b.npz]``); every column's protocol is listed under the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.schema import canonical_json
from lina_bench.evaluators.geneval.scoring import TAGS
from lina_bench.reports.base import Report

ROW_KEYS = ("generator", "checkpoint", "variant")
# Target fields that name what was measured (they vary along the rows, not the columns).
IDENTITY_FIELDS = {"family", "attention", "extra", "name", "options", "path", "format", "sha256"}
FLOPS_UNIT = "{counter}, 1 MAC = 1 FLOP"


@dataclass(frozen=True)
class MetricSpec:
    """How the leaderboard shows one stored metric: header ``label (unit)``, values times ``scale``.
    ``unit`` may name protocol fields of the evaluator in braces (``{counter}``)."""

    label: str
    unit: str = ""
    scale: float = 1.0


# Column order of the generator table: quality first, then cost.
GENERATOR_METRICS: dict[tuple[str, str], MetricSpec] = {
    ("fid", "fid"): MetricSpec("FID"),
    ("fid", "sfid"): MetricSpec("sFID"),
    ("fid", "inception_score"): MetricSpec("IS"),
    ("fid", "precision"): MetricSpec("Precision"),
    ("fid", "recall"): MetricSpec("Recall"),
    ("fid", "kid"): MetricSpec("KID"),
    **{("geneval", f"geneval_{tag}"): MetricSpec(f"GenEval {tag.replace('_', ' ')}") for tag in TAGS},
    ("geneval", "geneval_overall"): MetricSpec("GenEval overall"),
    ("clip-score", "clip_score"): MetricSpec("CLIP score", "100 x cos"),
    ("model-flops", "params"): MetricSpec("Params", "M", 1e-6),
    ("model-flops", "gmacs_per_image"): MetricSpec("GFLOPs/image", FLOPS_UNIT),
    ("model-flops", "attention_gmacs_per_image"): MetricSpec("Attention GFLOPs/image", FLOPS_UNIT),
    ("model-speed", "seconds_per_image"): MetricSpec("Latency", "s/image"),
    ("model-speed", "images_per_s"): MetricSpec("Throughput", "images/s"),
    ("model-speed", "peak_mem_mib"): MetricSpec("Peak memory", "MiB"),
}
# Column order of the attention-module table.
MODULE_METRICS: dict[tuple[str, str], MetricSpec] = {
    ("flops", "params"): MetricSpec("Params"),
    ("flops", "gmacs"): MetricSpec("GFLOPs/call", FLOPS_UNIT),
    ("speed", "latency_ms"): MetricSpec("Latency", "ms"),
    ("speed", "latency_ratio"): MetricSpec("Latency ratio", "x, side by side"),
    ("speed", "throughput"): MetricSpec("Throughput", "tokens/s"),
    ("speed", "peak_mem_mib"): MetricSpec("Peak memory", "MiB"),
    ("module-profile", "forward_ms"): MetricSpec("Forward", "ms"),
}
SWEEP_READS = ("gmacs@*px", "tokens@*px")  # flops-sweep rows: the cost-vs-resolution plot


@dataclass
class Column:
    """One column: a metric under one column protocol."""

    evaluator: str
    metric: str
    protocol: dict[str, Any]
    spec: MetricSpec
    higher_is_better: bool | None
    qualifier: str = ""  # the protocol fields that set it apart from its metric's other columns

    @property
    def header(self) -> str:
        unit = self.spec.unit.format(**self.protocol.get("evaluator", {})) if self.spec.unit else ""
        text = self.spec.label + (f" ({unit})" if unit else "")
        return text + (f" [{self.qualifier}]" if self.qualifier else "")


@dataclass
class Table:
    """``values``: one row per (generator, checkpoint, variant), one column per :class:`Column`
    (NaN where the store holds nothing); ``notes``: what the reader must know (dropped duplicates)."""

    title: str
    values: pd.DataFrame
    columns: list[Column]
    notes: list[str] = field(default_factory=list)

    def best(self) -> pd.DataFrame:
        """Booleans, True where a cell holds its column's best value (by the metric's direction)."""
        marks = pd.DataFrame(False, index=self.values.index, columns=self.values.columns)
        for i, column in enumerate(self.columns):
            cells = self.values.iloc[:, i]
            if column.higher_is_better is None or cells.isna().all():
                continue
            target = cells.max() if column.higher_is_better else cells.min()
            marks.iloc[:, i] = np.isclose(cells, target, rtol=1e-12, atol=0.0)
        return marks

    def frame(self) -> pd.DataFrame:
        """``values`` with the row keys as the first columns and the headers as column names."""
        flat = self.values.copy()
        flat.columns = [c.header for c in self.columns]
        return flat.reset_index()


def _target_part(protocol: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(target kind key, its part) of a stored protocol ``{"evaluator": ..., <kind>: ...}``."""
    kinds = [k for k in protocol if k != "evaluator"]
    return (kinds[0], protocol[kinds[0]]) if kinds else ("", {})


def column_protocol(protocol: dict[str, Any]) -> dict[str, Any]:
    """The part of a row's protocol that a column fixes: the evaluator's part, the target kind and the
    target's fields but its identity fields."""
    kind, part = _target_part(protocol)
    settings = {k: v for k, v in part.items() if k not in IDENTITY_FIELDS}
    return {"evaluator": protocol.get("evaluator", {}), "target": kind, **({kind: settings} if settings else {})}


def _text(value: Any) -> str:
    """A stored string field, "" for None (NaN once in a DataFrame)."""
    return value if isinstance(value, str) else ""


def row_key(row: Any) -> tuple[str, str, str]:
    """(generator, checkpoint, variant) of a stored row: the suite's label of the generator (or of
    the samples), the checkpoint's (or samples') file name, the attention variant."""
    config = row.config or {}
    if (config.get("samples") or {}).get("name"):
        return config["samples"]["name"], Path(config["samples"].get("path", "")).name, ""
    target = row.job.split("/", 1)[1] if "/" in row.job else row.job
    generator = target.split("[", 1)[0] if _text(row.generator) else ""
    checkpoint = ((config.get("generator") or {}).get("checkpoint") or {}).get("path", "")
    return generator, Path(checkpoint).name if checkpoint else "", _text(row.variant)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): canonical_json(value) if not isinstance(value, str) else value}


def _short(value: str, width: int = 24) -> str:
    return value if len(value) <= width else value[:width - 3] + "..."


def qualifiers(protocols: list[dict[str, Any]]) -> list[str]:
    """For columns of one metric under different protocols: ``key=value`` for each field whose value
    differs among the columns that have it (a field only some columns have, such as a generator's
    guidance beside samples made elsewhere, is told apart by ``target``)."""
    if len(protocols) < 2:
        return [""] * len(protocols)
    flat = [_flatten(p) for p in protocols]
    keys = sorted({k for f in flat for k in f}, key=lambda k: (k != "target", k))
    differing = [k for k in keys if len({f[k] for f in flat if k in f}) > 1]
    return [", ".join(f"{k.rsplit('.', 1)[-1]}={_short(f[k])}" for k in differing if k in f) for f in flat]


def build_table(rows: pd.DataFrame, specs: dict[tuple[str, str], MetricSpec], title: str) -> Table:
    """The table of ``rows`` (stored results) for the metrics in ``specs``, in their order."""
    picked = rows[[(e, m) in specs for e, m in zip(rows.evaluator, rows.metric, strict=True)]]
    cells: dict[tuple[tuple[str, str, str], int], tuple[str, float]] = {}
    columns: list[Column] = []
    index: dict[tuple[str, str, str, str], int] = {}  # (evaluator, metric, protocol json) -> column
    dropped = 0
    for row in picked.itertuples():
        protocol = column_protocol(row.protocol)
        key = (row.evaluator, row.metric, canonical_json(protocol))
        if key not in index:
            index[key] = len(columns)
            columns.append(Column(row.evaluator, row.metric, protocol, specs[row.evaluator, row.metric],
                                  row.higher_is_better))
        cell = (row_key(row), index[key])
        finished = str((row.provenance or {}).get("finished_at", ""))
        value = float(row.value) * columns[index[key]].spec.scale
        if cell in cells:
            dropped += 1
            if finished < cells[cell][0]:
                continue
        cells[cell] = (finished, value)
    order = sorted(range(len(columns)), key=lambda i: (list(specs).index((columns[i].evaluator, columns[i].metric)), i))
    columns = [columns[i] for i in order]
    position = {old: new for new, old in enumerate(order)}
    for metric in {(c.evaluator, c.metric) for c in columns}:
        same = [c for c in columns if (c.evaluator, c.metric) == metric]
        for column, text in zip(same, qualifiers([c.protocol for c in same]), strict=True):
            column.qualifier = text
    keys = list(dict.fromkeys(k for k, _ in cells))
    values = np.full((len(keys), len(columns)), np.nan)
    for (key, col), (_, value) in cells.items():
        values[keys.index(key), position[col]] = value
    frame = pd.DataFrame(values, index=pd.MultiIndex.from_tuples(keys, names=ROW_KEYS) if keys else
                         pd.MultiIndex.from_tuples([], names=ROW_KEYS), columns=range(len(columns)))
    notes = [f"{dropped} older result(s) for a cell already filled were left out (the most recent "
             "finished_at is shown)"] if dropped else []
    return Table(title, frame, columns, notes)


class LeaderboardReport(Report):
    """Leaderboard tables (markdown, LaTeX, HTML, CSV) and plots: quality vs cost, cost vs resolution,
    GenEval per tag."""

    FORMATS = ("md", "html", "tex", "csv")
    reads = {evaluator: tuple(m for e, m in {**GENERATOR_METRICS, **MODULE_METRICS} if e == evaluator)
             for evaluator, _ in {**GENERATOR_METRICS, **MODULE_METRICS}}
    reads["flops-sweep"] = SWEEP_READS

    def __init__(self, formats: list[str] | tuple[str, ...] = FORMATS) -> None:
        unknown = sorted(set(formats) - set(self.FORMATS))
        if unknown or not formats:
            raise LinaBenchError(f"unknown report format(s) {', '.join(unknown) or '(none given)'}; "
                                 f"choose from {', '.join(self.FORMATS)}")
        self.formats = tuple(formats)

    def tables(self, results: pd.DataFrame) -> list[Table]:
        """The non-empty tables of ``results``: generators, then attention modules."""
        tables = [build_table(results, GENERATOR_METRICS, "Generators"),
                  build_table(results, MODULE_METRICS, "Attention modules")]
        return [t for t in tables if t.columns]

    def write(self, results: pd.DataFrame, out_dir: Path) -> list[Path]:
        from lina_bench.reports.leaderboard_formats import write_formats
        from lina_bench.reports.leaderboard_plots import write_plots

        tables = self.tables(results)
        plots = write_plots(tables, self.select(results, "flops-sweep"), out_dir)
        files = write_formats(tables, plots, results, out_dir, self.formats)
        return files + [path for plot in plots for path in (plot.png, plot.svg)]
