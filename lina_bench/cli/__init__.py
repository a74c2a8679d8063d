"""The ``lina-bench`` command line. Exit codes: 0 ok, 1 a job or check failed, 2 bad usage or input."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from lina_bench import __version__
from lina_bench.api import registry
from lina_bench.api.errors import JobFailed, LinaBenchError
from lina_bench.cli.options import DEFAULT_OUT

MAX_PRINTED_ROWS = 60  # longer runs point to `lina-bench results` and their reports instead
KINDS = {"attention": registry.attention, "generators": registry.generators, "evaluators": registry.evaluators,
         "reports": registry.reports}


def format_value(value: float) -> str:
    """Counts as integers with separators, other numbers with 4 significant digits."""
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


class _Group(click.Group):
    """Maps lina-bench errors to exit codes and one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LinaBenchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except JobFailed as exc:
            click.echo(f"failed: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; finished jobs are kept in the results store", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lina-bench")
def cli() -> None:
    """Evaluate and benchmark linear-attention image generators against softmax baselines.

    Suites list generators, attention variants and evaluators; `run` executes them and stores
    every number, with its protocol and provenance, in OUT/results.sqlite.
    """


@cli.command("list")
@click.argument("kind", required=False,
                type=click.Choice(["attention", "generators", "evaluators", "reports", "suites"]))
def list_cmd(kind: str | None) -> None:
    """List registered attention variants, generators, evaluators, reports and built-in suites."""
    import yaml

    from lina_bench.engine.suite import builtin_suites

    for name in [kind] if kind else ["attention", "generators", "evaluators", "reports", "suites"]:
        click.secho(f"{name}:", bold=True)
        if name == "suites":  # read, not validated: validation builds evaluators (and imports torch)
            for suite_name, text in sorted(builtin_suites().items()):
                click.echo(f"  {suite_name:<18} {(yaml.safe_load(text) or {}).get('description', '')}")
            continue
        reg = KINDS[name]
        for entry in reg.names():
            targets = reg.class_attribute(entry, "targets") or (reg.class_attribute(entry, "scope"),)
            scope = f"[{', '.join(targets)}] " if name == "evaluators" else ""
            click.echo(f"  {entry:<18} {scope}{reg.describe(entry)}")


@cli.command()
@click.argument("suite", required=False)
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
              help="Output directory (results store, artefacts).")
@click.option("--force", is_flag=True, help="Re-run jobs that already finished in OUT.")
@click.option("--device", help="Override the suite's device (cpu, cuda, cuda:N, auto).")
@click.option("--dry-run", is_flag=True, help="Validate the suite and list its jobs without running them.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(suite: str | None, out_dir: str, force: bool, device: str | None, dry_run: bool, no_progress: bool) -> None:
    """Run SUITE (a YAML file or a built-in name; default: the built-in `efficiency` suite)."""
    from lina_bench.engine.runner import on_device, run_suite
    from lina_bench.engine.store import ResultStore
    from lina_bench.engine.suite import load_suite

    loaded = on_device(load_suite(suite, out_dir), device)
    if dry_run:
        done = ResultStore.in_dir(out_dir).completed_keys() if (Path(out_dir) / "results.sqlite").exists() else set()
        for job in loaded.jobs():
            state = "done" if job.key in done and not force else "todo"
            click.echo(f"{state}  {job.name}  {job.key[:12]}")
        return
    summary = run_suite(loaded, out_dir, force=force, progress=not no_progress,
                        echo=lambda line: tqdm.write(line, file=sys.stderr))
    counts = {s: sum(o.status == s for o in summary.outcomes) for s in ("ok", "failed", "skipped")}
    rows = [(o.job.name, m.name, format_value(m.value), m.unit) for o in summary.outcomes for m in o.metrics]
    if len(rows) > MAX_PRINTED_ROWS:
        click.echo(f"{len(rows)} result rows (see `lina-bench results --out {out_dir}`)")
    elif rows:
        from tabulate import tabulate
        click.echo(tabulate(rows, headers=["job", "metric", "value", "unit"], disable_numparse=True))
    for outcome in summary.failed:
        click.secho(f"FAILED {outcome.job.name}: {outcome.error}", fg="red", err=True)
    for error in summary.report_errors:
        click.secho(f"FAILED {error}", fg="red", err=True)
    for path in summary.report_files:
        click.echo(f"wrote {path}")
    click.echo(f"run {summary.run_id}: {counts['ok']} ok, {counts['failed']} failed, "
               f"{counts['skipped']} already done (skipped); results in {Path(out_dir) / 'results.sqlite'}")
    if counts["skipped"] and not counts["ok"] + counts["failed"]:
        click.echo("every job was already done; use --force to run them again")
    click.get_current_context().exit(1 if summary.failed or summary.report_errors else 0)


def _add_cost_commands() -> None:
    from lina_bench.cli.check import check
    from lina_bench.cli.fid import fid, fid_ref
    from lina_bench.cli.flops import flops
    from lina_bench.cli.geneval import clip_score_cmd, geneval
    from lina_bench.cli.kernels import kernels
    from lina_bench.cli.report import report
    from lina_bench.cli.results import results
    from lina_bench.cli.sample import sample
    from lina_bench.cli.speed import speed

    for command in (flops, speed, check, fid, fid_ref, geneval, clip_score_cmd, kernels, report, results,
                    sample):
        cli.add_command(command)


_add_cost_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="lina-bench")
