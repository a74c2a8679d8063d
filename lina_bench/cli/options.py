"""Options shared by the commands: modules, generators, key=value pairs, torchrun set-up."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import click
import yaml

from lina_bench.engine.suite import DEFAULT_OUT_DIR as DEFAULT_OUT  # every command's results store and work files

GRID_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


class GridType(click.ParamType):
    """``HxW`` -> (h, w)."""

    name = "HxW"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        match = GRID_RE.match(str(value))
        if not match or min(int(match[1]), int(match[2])) < 1:
            self.fail(f"{value!r} is not a grid of two positive sizes like 16x16", param, ctx)
        return int(match[1]), int(match[2])


def parse_assignments(pairs: tuple[str, ...], flag: str) -> dict[str, Any]:
    """``key=value`` pairs -> dict, values read as YAML scalars (``3`` -> 3, ``true`` -> True)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint=flag)
        options[key.strip()] = yaml.safe_load(value)
    return options


def option_group(*decorators: Callable) -> Callable[[Callable], Callable]:
    """One decorator that applies click options in the order listed (as if stacked top to bottom)."""
    def apply(fn: Callable) -> Callable:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn
    return apply


# --variant/--dim/--heads/--grid/--prefix/--batch/--option, as in ``lina-bench flops module``.
module_options = option_group(
    click.option("--variant", required=True, help="Attention variant (lina-bench list attention)."),
    click.option("--dim", type=click.IntRange(min=1), required=True, help="Width C."),
    click.option("--heads", type=click.IntRange(min=1), required=True, help="Number of heads H."),
    click.option("--grid", type=GridType(), required=True, help="Image-token grid, e.g. 64x64."),
    click.option("--prefix", type=click.IntRange(min=0), default=0, show_default=True,
                 help="Condition tokens before the image tokens."),
    click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True),
    click.option("--option", "variant_options", multiple=True, metavar="KEY=VALUE",
                 help="Variant option, e.g. decay=1d (repeatable)."),
)

# --generator/--set/--attention/--checkpoint, to build a registered generator.
generator_options = option_group(
    click.option("--generator", required=True, help="Generator (lina-bench list generators)."),
    click.option("--set", "generator_options", multiple=True, metavar="KEY=VALUE",
                 help="Generator option, e.g. dim=64 (repeatable)."),
    click.option("--attention", help="Attention variant, for generators that let it be chosen."),
    click.option("--checkpoint", type=click.Path(), help="Local weights file (or folder, for lina)."),
)


def generator_entry(generator: str, pairs: tuple[str, ...], attention: str | None, checkpoint: str | None):
    """The suite entry of ``--generator G --set k=v --attention A --checkpoint W``."""
    from lina_bench.engine.suite import Entry

    options = parse_assignments(pairs, "--set")
    if attention:
        options["attention"] = attention
    return Entry(generator, options, checkpoint=checkpoint)


def build_cli_generator(generator: str, pairs: tuple[str, ...], attention: str | None, checkpoint: str | None):
    from lina_bench.api.generator import build_generator

    entry = generator_entry(generator, pairs, attention, checkpoint)
    return build_generator(entry.name, entry.options, entry.checkpoint)


def init_distributed(device: str) -> str:
    """Join the torchrun process group when there is one; returns this rank's device."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    return device


no_store_option = click.option("--no-store", is_flag=True,
                               help="Measure and print only; do not store the rows in OUT/results.sqlite.")
# --out/--no-store, for the measuring commands that have no output folder of their own.
store_options = option_group(
    click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True, type=click.Path(file_okay=False),
                 help="Results store (OUT/results.sqlite)."),
    no_store_option,
)


def measure_command(command: str, evaluator: str, options: dict[str, Any], target, kind: str, out_dir: str,
                    no_store: bool, device: str = "cpu", seed: int = 0):
    """Run a measuring command's job on the suite path and store it (unless ``no_store``)."""
    from lina_bench.api.evaluator import EvalContext
    from lina_bench.engine.runner import run_command
    from lina_bench.engine.suite import Entry, command_job

    job = command_job(command, Entry(evaluator, options), target, kind, seed, device)
    context = EvalContext(device=device, seed=seed, work_dir=Path(out_dir) / "work", progress=True)
    return run_command(job, out_dir, context, store=not no_store)


def stored_line(result, out_dir: str) -> str:
    """Where a command's rows went."""
    return f"run {result.run_id} stored in {Path(out_dir) / 'results.sqlite'}" if result.run_id else "not stored"


def report_measurement(result, out_dir: str, as_json: bool) -> None:
    """Print a command's :class:`lina_bench.engine.runner.CommandResult`: JSON (metrics, the stored protocol,
    run id) or one line per metric and where the rows are stored."""
    if as_json:
        click.echo(json.dumps({"metrics": {m.name: m.value for m in result.metrics}, "protocol": result.protocol,
                               "run_id": result.run_id}, indent=2))
        return
    for metric in result.metrics:
        click.echo(f"{metric.name:<24} {metric.value:.6g} {metric.unit if metric.unit != '1' else ''}".rstrip())
    click.echo(stored_line(result, out_dir))


def select_run(store, out_dir: str, run: str, suite: str | None) -> str:
    """``--run`` resolved: ``current`` or ``all`` as given, ``latest`` as the last run (of ``suite`` if
    given), a run id checked against the store."""
    from lina_bench.api.errors import LinaBenchError

    runs = store.runs()
    if run == "latest":
        chosen = [r["run_id"] for r in runs if not suite or r["suite"] == suite][-1:]
        if not chosen:
            raise LinaBenchError(f"no runs in {out_dir}" + (f" for suite {suite!r}" if suite else ""))
        return chosen[0]
    if run not in ("all", "current") and run not in {r["run_id"] for r in runs}:
        raise LinaBenchError(f"no run {run!r} in {out_dir} (runs: {', '.join(r['run_id'] for r in runs)})")
    return run


def stored_results(out_dir: str, run: str, suite: str | None) -> list:
    """The stored :class:`~lina_bench.api.schema.Result` rows that ``--run`` names: ``current`` (each
    job's latest successful run), ``latest`` (the last run, of ``suite`` if given), ``all``, or a run id."""
    from lina_bench.engine.store import ResultStore

    store = ResultStore.in_dir(out_dir, create=False)
    run = select_run(store, out_dir, run, suite)
    if run == "current":
        return store.current_results(suite)
    return store.results(None if run == "all" else run, suite)
