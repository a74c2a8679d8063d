"""``lina-bench results``: show or export stored results; ``results import``: load exports from other machines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from lina_bench.cli.options import DEFAULT_OUT, select_run, stored_results

if TYPE_CHECKING:
    from lina_bench.engine.store import ResultStore


@click.group(invoke_without_command=True)
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output directory holding results.sqlite.")
@click.option("--run", "run_id", default="current", show_default=True,
              help="'current' (each job's latest successful results), 'latest' (the last run), 'all', "
                   "or a run id.")
@click.option("--suite", help="Only results of this suite.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--jobs", "show_jobs", is_flag=True, help="List jobs (status, error) instead of metric rows.")
@click.pass_context
def results(ctx: click.Context, out_dir: str, run_id: str, suite: str | None, fmt: str, output: str | None,
            show_jobs: bool) -> None:
    """Show or export stored results (JSON keeps protocol/config/provenance nested).

    `lina-bench results import FILE...` loads JSON exports (e.g. from other machines) into a store.
    """
    if ctx.invoked_subcommand:
        _refuse_own_options(ctx)
        return
    from lina_bench.engine.store import ResultStore

    store = ResultStore.in_dir(out_dir, create=False)
    records = _records(store, out_dir, run_id, suite, show_jobs)
    text = _render(records, fmt, all_runs=run_id == "all", show_jobs=show_jobs)
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {len(records)} rows to {output}", err=True)
    else:
        click.echo(text, nl=False)


def _refuse_own_options(ctx: click.Context) -> None:
    """`results --out X import ...` would ignore --out: the subcommand's options go after its name."""
    given = [p.opts[0] for p in ctx.command.params if ctx.get_parameter_source(p.name) is ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{', '.join(given)} is an option of `results` itself; the options of "
                               f"`results {ctx.invoked_subcommand}` go after {ctx.invoked_subcommand!r}", ctx)


def _records(store: ResultStore, out_dir: str, run_id: str, suite: str | None, show_jobs: bool) -> list[dict[str, Any]]:
    """The selected result rows (or jobs, with ``show_jobs``) as dicts."""
    run_id = select_run(store, out_dir, run_id, suite)
    selected = None if run_id in ("all", "current") else run_id
    if show_jobs:
        return [{k: j[k] for k in ("run_id", "job", "status", "error", "job_key")} for j in store.jobs(selected)
                if not suite or j["suite"] == suite]
    return [dataclasses.asdict(r) for r in stored_results(out_dir, run_id, suite)]


def _render(records: list[dict[str, Any]], fmt: str, all_runs: bool, show_jobs: bool) -> str:
    """Records as JSON, CSV (nested fields as canonical JSON) or a markdown table."""
    import pandas as pd

    from lina_bench.api.schema import JSON_FIELDS, canonical_json
    from lina_bench.cli import format_value

    if fmt == "json":
        return json.dumps(records, indent=2, default=str) + "\n"
    frame = pd.DataFrame(records)
    if fmt == "csv":
        for name in JSON_FIELDS:
            if name in frame:
                frame[name] = frame[name].map(canonical_json)
        return frame.to_csv(index=False)
    if frame.empty:
        return "no results\n"
    if show_jobs:
        cols = ["job", "status", "error"]
        frame["error"] = frame["error"].map(lambda e: e.splitlines()[0][:100] if isinstance(e, str) else "")
    else:
        cols = ["job", "metric", "value", "unit"]
        frame["value"] = frame["value"].map(format_value)
    cols = (["run_id"] if all_runs else []) + cols
    return frame[cols].to_markdown(index=False, disable_numparse=True) + "\n"


@results.command("import", short_help="Load JSON exports (e.g. from other machines) into a results store.")
@click.argument("files", nargs=-1, required=True, type=click.Path(), metavar="FILE...")
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output directory whose results.sqlite receives the rows (created if missing).")
def import_cmd(files: tuple[str, ...], out_dir: str) -> None:
    """Load FILE... (`lina-bench results --format json` exports) into OUT's results store.

    A row is identified by (run_id, job_key, metric): a row already stored is not added again. All
    files are checked first; if any is bad (missing, not JSON, a row with a missing, unknown or
    mistyped field, a value that contradicts the store), nothing is imported and the exit code is 2,
    with a message naming the file, the row (counting from 0) and the field.
    When several runs stored the same job, `results` shows the one that finished last (provenance
    finished_at), whatever the import order; imported jobs count as done for `run`.
    """
    from lina_bench.engine.results_io import load_export
    from lina_bench.engine.store import ResultStore

    batches = [(name, load_export(name)) for name in files]
    store = ResultStore.in_dir(out_dir)
    try:
        counts = store.import_results(batches)
    finally:
        store.close()
    for name, (added, existing) in zip(files, counts, strict=True):
        click.echo(f"{name}: {added} added, {existing} already stored")
    click.echo(f"{Path(out_dir) / 'results.sqlite'}: {sum(added for added, _ in counts)} added in all")
