"""``lina-bench report``: the leaderboard (markdown, HTML, LaTeX, CSV and plots) from stored results."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from lina_bench.api.errors import LinaBenchError
from lina_bench.cli.options import DEFAULT_OUT, stored_results

FORMATS = ("md", "html", "tex", "csv")


def _formats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = tuple(f.strip() for f in value.split(",") if f.strip())
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown or not chosen:
        raise click.BadParameter(f"{', '.join(unknown) or 'none given'}; choose from {','.join(FORMATS)}")
    return chosen


@click.command()
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output directory holding results.sqlite.")
@click.option("--output", "report_dir", type=click.Path(file_okay=False), help="Report folder [default: OUT/report].")
@click.option("--format", "formats", default=",".join(FORMATS), show_default=True, callback=_formats,
              help="Comma-separated formats among md, html, tex, csv.")
@click.option("--suite", help="Only results of this suite.")
@click.option("--run", "run", default="current", show_default=True,
              help="'current' (each job's latest successful results), 'latest', 'all' or a run id.")
def report(out_dir: str, report_dir: str | None, formats: tuple[str, ...], suite: str | None, run: str) -> None:
    """Write the leaderboard: one row per (generator, checkpoint, attention variant), quality and cost
    columns, one column per metric and protocol, best values marked; plots beside it."""
    import pandas as pd

    from lina_bench.api import registry
    from lina_bench.api.schema import RESULT_FIELDS

    rows = [dataclasses.asdict(r) for r in stored_results(out_dir, run, suite)]
    leaderboard = registry.reports.build("leaderboard", formats=list(formats))
    frame = leaderboard.relevant(pd.DataFrame(rows, columns=list(RESULT_FIELDS)))
    if frame.empty:
        raise LinaBenchError(f"none of the {len(rows)} selected results in {out_dir} is a leaderboard metric "
                             "(quality: fid, geneval, clip-score; cost: model-flops, model-speed, flops, speed)")
    target = Path(report_dir) if report_dir else Path(out_dir) / "report"
    target.mkdir(parents=True, exist_ok=True)
    for path in leaderboard.write(frame, target):
        click.echo(f"wrote {path}")
