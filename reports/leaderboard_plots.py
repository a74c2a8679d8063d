"""The leaderboard's plots (matplotlib, PNG and SVG): FID against GFLOPs per image with the Pareto
front marked, attention cost against resolution per variant, GenEval accuracy per tag per model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lina_bench.api.schema import canonical_json
from lina_bench.reports.efficiency import sweep_frame
from lina_bench.reports.leaderboard import Column, Table


@dataclass(frozen=True)
class Plot:
    title: str
    png: Path
    svg: Path


def pareto_front(cost: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both axes (lower is better on each), by cost."""
    order = np.lexsort((error, cost))
    front, best = [], np.inf
    for i in order:
        if error[i] < best:
            front.append(i)
            best = error[i]
    return np.array(front, dtype=int)


def _row_label(key: tuple[str, str, str]) -> str:
    generator, checkpoint, variant = key
    return generator + (f"[{variant}]" if variant else "") + (f" {checkpoint}" if checkpoint else "")


def _columns(table: Table, evaluator: str, metric: str | None = None) -> list[tuple[int, Column]]:
    return [(i, c) for i, c in enumerate(table.columns)
            if c.evaluator == evaluator and (metric is None or c.metric == metric)]


def _save(fig, out_dir: Path, stem: str, title: str) -> Plot:
    import matplotlib.pyplot as plt

    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    fig.tight_layout()
    fig.savefig(png)
    fig.savefig(svg)
    plt.close(fig)
    return Plot(title, png, svg)


def quality_vs_cost(table: Table, out_dir: Path) -> Plot | None:
    """FID (each FID column) against GFLOPs per image, every model a point, the Pareto front drawn."""
    import matplotlib.pyplot as plt

    fids, costs = _columns(table, "fid", "fid"), _columns(table, "model-flops", "gmacs_per_image")
    panels = []
    for f, fid_column in fids:
        both = table.values.iloc[:, [costs[0][0], f]].dropna() if costs else pd.DataFrame()
        if len(both):
            panels.append((fid_column, both))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), dpi=120, squeeze=False)
    for ax, (fid_column, both) in zip(axes[0], panels, strict=True):
        cost, fid = both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()
        ax.scatter(cost, fid, color="tab:blue", zorder=2)
        for x, y, key in zip(cost, fid, both.index, strict=True):
            ax.annotate(_row_label(key), (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        front = pareto_front(cost, fid)
        ax.step(cost[front], fid[front], where="post", color="tab:red", linewidth=1.2, label="Pareto front")
        ax.scatter(cost[front], fid[front], marker="*", s=120, color="tab:red", zorder=3)
        ax.set(xlabel=costs[0][1].header, ylabel=fid_column.header, title="Quality vs cost (lower-left is better)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out_dir, "fid_vs_gflops", "FID vs GFLOPs per image (Pareto front in red)")


def cost_vs_resolution(sweep_rows: pd.DataFrame, out_dir: Path) -> Plot | None:
    """GFLOPs per attention call against resolution, one line per variant, a panel per setting."""
    import matplotlib.pyplot as plt

    if sweep_rows.empty:
        return None
    groups = sweep_rows.groupby(sweep_rows.protocol.map(lambda p: canonical_json(p.get("evaluator", {}))), sort=False)
    fig, axes = plt.subplots(1, groups.ngroups, figsize=(6 * groups.ngroups, 4.5), dpi=120, squeeze=False)
    for ax, (_, rows) in zip(axes[0], groups, strict=True):
        frame = sweep_frame(rows)
        setting = rows.protocol.iloc[0]["evaluator"]
        for variant in (c for c in frame.columns if c != "tokens"):
            ax.plot(frame.index, frame[variant], marker="o", markersize=3, label=variant)
        ax.set(xscale="log", yscale="log", xlabel="resolution (px)", ylabel="GFLOPs per attention call",
               title=f"C={setting.get('dim')}, H={setting.get('num_heads')}, patch {setting.get('patch')}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    return _save(fig, out_dir, "cost_vs_resolution", "Attention cost vs resolution per variant")


def geneval_tags(table: Table, out_dir: Path) -> Plot | None:
    """GenEval accuracy per tag, a bar per model, a panel per GenEval protocol."""
    import matplotlib.pyplot as plt

    columns = _columns(table, "geneval")
    groups: dict[str, list[tuple[int, Column]]] = {}
    for i, column in columns:
        groups.setdefault(canonical_json(column.protocol), []).append((i, column))
    if not groups:
        return None
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 4 * len(groups)), dpi=120, squeeze=False)
    for ax, group in zip(axes[:, 0], groups.values(), strict=True):
        values = table.values.iloc[:, [i for i, _ in group]].dropna(how="all")
        tags = [c.metric.removeprefix("geneval_") for _, c in group]
        width = 0.8 / max(len(values), 1)
        for k, (key, row) in enumerate(values.iterrows()):
            ax.bar(np.arange(len(tags)) + k * width, row.to_numpy(), width, label=_row_label(key))
        ax.set_xticks(np.arange(len(tags)) + 0.4 - width / 2, tags, rotation=20)
        ax.set(ylim=(0, 1), ylabel="accuracy", title="GenEval per tag" + (f" [{group[0][1].qualifier}]"
                                                                         if group[0][1].qualifier else ""))
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out_dir, "geneval_tags", "GenEval accuracy per tag per model")


def write_plots(tables: list[Table], sweep_rows: pd.DataFrame, out_dir: Path) -> list[Plot]:
    """Every plot the results allow (none for what they lack)."""
    import matplotlib

    matplotlib.use("Agg")
    generators = next((t for t in tables if t.title == "Generators"), None)
    plots = [quality_vs_cost(generators, out_dir) if generators else None,
             cost_vs_resolution(sweep_rows, out_dir),
             geneval_tags(generators, out_dir) if generators else None]
    return [p for p in plots if p is not None]
