"""``lina-bench speed``: latency, throughput and peak memory of a module or of a generator's sampling."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from tabulate import tabulate

from lina_bench.cli.options import (
    generator_entry,
    generator_options,
    measure_command,
    module_options,
    parse_assignments,
    store_options,
    stored_line,
)

DEVICE = click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
REPEATS = click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True,
                       help="Timed calls (after warm-up).")
WARMUP = click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group()
def speed() -> None:
    """Measure latency (median, IQR), throughput and peak memory."""


def _emit(header: dict, command, rate_unit: str, as_json: bool, out_dir: str) -> None:
    """Print one measurement (a command's result; its details: the SpeedResult, or for generators the
    SpeedResult and the per-stage timings, which add a ``stages`` list / table)."""
    result, stages = command.details if isinstance(command.details, tuple) else (command.details, None)
    ratio = {m.name: m.value for m in command.metrics if m.name.startswith("latency_ratio")}
    data = {**header, **asdict(result), "throughput": result.per_second, "throughput_unit": rate_unit, **ratio,
            "run_id": command.run_id}
    if stages is not None:
        data["stages"] = [s.as_json() for s in stages]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.secho("  ".join(f"{k}={v}" for k, v in header.items()), bold=True)
    click.echo(f"  latency: {result.median_ms:.3f} ms median (IQR {result.p25_ms:.3f} - {result.p75_ms:.3f}, "
               f"{result.repeats} calls)")
    click.echo(f"  throughput: {result.per_second:,.1f} {rate_unit}")
    if ratio:
        click.echo(f"  latency ratio to {header.get('baseline')}: x{ratio['latency_ratio']:.3f} "
                   f"[IQR {ratio['latency_ratio_p25']:.3f} - {ratio['latency_ratio_p75']:.3f}], timed side by side")
    click.echo(f"  peak memory: {result.peak_mem_bytes / 2**20:.1f} MiB  ({result.memory_method})")
    if stages:
        rows = [(s.stage.name, f"{s.stage.calls_per_image:g}", "x2" if s.stage.cfg_doubles_batch else "-",
                 f"{s.timing.median_ms:.3f}", f"{s.seconds_per_image:.6g}") for s in stages]
        rows.append(("total (stages)", "", "", "", f"{sum(s.seconds_per_image for s in stages):.6g}"))
        click.echo("\n" + tabulate(rows, headers=["stage", "calls/image", "CFG", "ms/call (batch)", "s/image"],
                                    disable_numparse=True))
    click.echo(stored_line(command, out_dir))


@speed.command("module")
@module_options
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True)
@DEVICE
@click.option("--backward", is_flag=True, help="Time forward + backward.")
@click.option("--baseline", help="Also time this variant side by side (A B A B ...) and report the latency ratio.")
@REPEATS
@WARMUP
@AS_JSON
@store_options
def speed_module(variant: str, dim: int, heads: int, grid: tuple[int, int], prefix: int, batch: int,
                 variant_options: tuple[str, ...], dtype: str, device: str, backward: bool, baseline: str | None,
                 repeats: int, warmup: int, as_json: bool, out_dir: str, no_store: bool) -> None:
    """Latency of one attention-variant call (forward, or forward + backward): the `speed` evaluator."""
    from lina_bench.engine.runner import resolve_device
    from lina_bench.engine.suite import Entry
    from lina_bench.evaluators.base import AttentionTarget, ModuleSetting

    setting = ModuleSetting(dim, heads, grid, prefix, batch)
    options = parse_assignments(variant_options, "--option")
    AttentionTarget(variant, options).build(setting)  # clear errors for bad variants or options before timing
    evaluator = {"dim": dim, "num_heads": heads, "grid": list(grid), "prefix": prefix, "batch": batch, "dtype": dtype,
                 "backward": backward, "repeats": repeats, "warmup": warmup, "baseline": baseline}
    result = measure_command("speed", "speed", evaluator, Entry(variant, options), "attention", out_dir, no_store,
                             resolve_device(device))
    header = {"variant": variant, **setting.as_dict(), "backward": backward, **({"baseline": baseline} if baseline
                                                                                   else {})}
    _emit(header, result, "tokens/s", as_json, out_dir)


@speed.command("model")
@generator_options
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Images per sample() call.")
@DEVICE
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True)
@AS_JSON
@store_options
def speed_model(generator: str, generator_options: tuple[str, ...], attention: str | None, checkpoint: str | None,
                batch: int, device: str, repeats: int, warmup: int, as_json: bool, out_dir: str,
                no_store: bool) -> None:
    """Sampling latency of a generator (the `model-speed` evaluator): per image and per network step; per
    cost stage, the latency of one probe call for BATCH images and the seconds per image it implies
    (JSON: ``stages``)."""
    from lina_bench.engine.runner import resolve_device

    target = generator_entry(generator, generator_options, attention, checkpoint)
    result = measure_command("speed", "model-speed", {"batch": batch, "repeats": repeats, "warmup": warmup},
                             target, "generator", out_dir, no_store, resolve_device(device))
    value = {m.name: m.value for m in result.metrics}
    steps = result.protocol["generator"]["steps"]
    _emit({"generator": generator, "batch": batch, "steps": steps,
           "seconds_per_image": round(value["seconds_per_image"], 6),
           "seconds_per_step": round(value["seconds_per_step"], 6)}, result, "images/s", as_json, out_dir)
