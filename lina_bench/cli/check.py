"""``lina-bench check``: regression checks that fail CI (exit 1) when numbers drift."""

from __future__ import annotations

from pathlib import Path

import click
from tabulate import tabulate


@click.group()
def check() -> None:
    """Regression checks against a committed baseline (exit 1 on drift)."""


@check.command("flops")
@click.option("--baseline", type=click.Path(dir_okay=False), help="Baseline JSON to check against.")
@click.option("--write-baseline", type=click.Path(dir_okay=False), help="Write a baseline from SUITE's counts.")
@click.option("--suite", default=None, help="Suite whose 'flops' jobs make the baseline (default: efficiency).")
def check_flops(baseline: str | None, write_baseline: str | None, suite: str | None) -> None:
    """Recompute the FLOPs named in a baseline and fail with a per-row diff when any changed."""
    from lina_bench.api.errors import LinaBenchError
    from lina_bench.engine.regression import check_baseline
    from lina_bench.engine.regression import write_baseline as write
    from lina_bench.engine.suite import load_suite

    if bool(baseline) == bool(write_baseline):
        raise LinaBenchError("give exactly one of --baseline FILE or --write-baseline FILE")
    if write_baseline:
        count = write(Path(write_baseline), load_suite(suite))
        click.echo(f"wrote {count} rows to {write_baseline}")
        return
    checks = check_baseline(Path(baseline))
    failed = [c for c in checks if not c.ok]
    if failed:
        rows = [(c.name, f"{c.baseline:,}", "-" if c.now is None else f"{c.now:,}",
                 c.error or f"{100 * c.change:+.4f}%", f"{100 * c.tolerance:g}%") for c in failed]
        click.echo(tabulate(rows, headers=["row", "baseline MACs", "now MACs", "change", "tolerance"],
                            disable_numparse=True))
    click.echo(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    click.get_current_context().exit(1 if failed else 0)
