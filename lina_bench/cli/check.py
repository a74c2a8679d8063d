"""``lina-bench check``: regression checks that fail CI (exit 1) when numbers drift."""

from __future__ import annotations

from pathlib import Path

import click
from tabulate import tabulate

from lina_bench.cli.options import DEFAULT_OUT


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


@check.command("results")
@click.option("--baseline", type=click.Path(dir_okay=False), help="Baseline JSON to check the stored results against.")
@click.option("--write-baseline", type=click.Path(dir_okay=False), help="Write a baseline from the stored results.")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output directory holding results.sqlite.")
@click.option("--suite", help="Only this suite's results (default when checking: the baseline's suite).")
@click.option("--include-timings", is_flag=True,
              help="With --write-baseline: keep latency/throughput rows (machine-dependent; left out by default).")
@click.option("--diff", "diff_file", type=click.Path(dir_okay=False), help="Also write the markdown diff table here.")
def check_results_cmd(baseline: str | None, write_baseline: str | None, out_dir: str, suite: str | None,
                      include_timings: bool, diff_file: str | None) -> None:
    """Compare the store's current results with a baseline: exit 1 with a markdown table of every row
    that moved when one moved the bad way beyond its tolerance (or is missing), 0 otherwise, 2 for a
    bad file. Counts (FLOPs, parameters) are exact by default; quality is direction-aware."""
    from lina_bench.api.errors import LinaBenchError
    from lina_bench.api.files import write_text_atomic
    from lina_bench.engine.results_check import check_results, diff_table, load_baseline
    from lina_bench.engine.results_check import write_baseline as write
    from lina_bench.engine.store import ResultStore

    if bool(baseline) == bool(write_baseline):
        raise LinaBenchError("give exactly one of --baseline FILE or --write-baseline FILE")
    store = ResultStore.in_dir(out_dir, create=False)
    if write_baseline:
        count = write(Path(write_baseline), store.current_results(suite), suite, include_timings)
        click.echo(f"wrote {count} rows to {write_baseline}")
        return
    data = load_baseline(Path(baseline))
    checks = check_results(data, store.current_results(suite or data.get("suite")))
    failed = [c for c in checks if not c.ok]
    table = diff_table(checks)
    if any(c.moved for c in checks):
        click.echo(table)
    if diff_file:
        write_text_atomic(diff_file, (table if any(c.moved for c in checks) else "No baseline row moved.") + "\n")
    click.echo(f"{len(checks) - len(failed)} of {len(checks)} baseline rows passed, {len(failed)} failed "
               f"({sum(c.moved for c in checks)} moved)")
    click.get_current_context().exit(1 if failed else 0)
