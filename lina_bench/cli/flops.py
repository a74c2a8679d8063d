"""``lina-bench flops``: FLOP counts of an attention module or a generator's network."""

from __future__ import annotations

import json

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


@click.group()
def flops() -> None:
    """Count FLOPs (fvcore convention: 1 multiply-add = 1 FLOP, in GMACs)."""


def _print_report(title: str, report, extra: dict[str, str]) -> None:
    click.secho(title, bold=True)
    for key, value in extra.items():
        click.echo(f"  {key}: {value}")
    click.echo(f"  total: {report.gmacs:.6g} GMACs ({report.total:,} MACs)   [{report.counter}]")
    click.echo(f"  convention: {report.convention}\n")
    for heading, counts in (("operator", report.by_operator), ("module", report.by_module)):
        rows = [(name, f"{c / 1e9:.6g}", f"{100 * c / report.total:.2f}%" if report.total else "-")
                for name, c in sorted(counts.items(), key=lambda kv: -kv[1])]
        click.echo(tabulate(rows, headers=[heading, "GMACs", "share"], disable_numparse=True) + "\n")
    for kind, ops in report.uncounted_ops.items():
        label = "not counted (elementwise, by convention)" if kind == "elementwise" else "NOT COUNTED (unknown op)"
        click.echo(f"  {label}: " + ", ".join(f"{op} x{n}" for op, n in ops.items()))


@flops.command("module")
@module_options
@click.option("--counter", type=click.Choice(["fvcore", "torch", "analytic"]), default="fvcore", show_default=True,
              help="fvcore (runs on CPU), torch FlopCounterMode (meta device, no compute) or the closed form.")
@click.option("--elementwise", is_flag=True, help="Also count elementwise ops (fvcore only).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@store_options
def flops_module(variant: str, dim: int, heads: int, grid: tuple[int, int], prefix: int, batch: int,
                 variant_options: tuple[str, ...], counter: str, elementwise: bool, as_json: bool, out_dir: str,
                 no_store: bool) -> None:
    """FLOPs of one attention-variant call on a (BATCH, PREFIX + h*w, DIM) input (the `flops` evaluator)."""
    from lina_bench.api.evaluator import ModuleSetting
    from lina_bench.engine.suite import Entry

    setting = ModuleSetting(dim, heads, grid, prefix, batch)
    options = parse_assignments(variant_options, "--option")
    evaluator = {"dim": dim, "num_heads": heads, "grid": list(grid), "prefix": prefix, "batch": batch,
                 "counter": counter, "elementwise": elementwise}
    result = measure_command("flops", "flops", evaluator, Entry(variant, options), "attention", out_dir, no_store)
    report, params = result.details
    if as_json:
        click.echo(json.dumps({"variant": variant, "options": options, "setting": setting.as_dict(),
                               "params": params, **report.as_json(), "run_id": result.run_id}, indent=2))
        return
    _print_report(f"{variant}  dim={dim} heads={heads} grid={grid[0]}x{grid[1]} prefix={prefix} batch={batch}",
                  report, {"tokens": str(setting.tokens), "params": f"{params:,}"})
    click.echo(stored_line(result, out_dir))


@flops.command("model")
@generator_options
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--counter", type=click.Choice(["fvcore", "torch"]), default="fvcore", show_default=True)
@click.option("--elementwise", is_flag=True, help="Also count elementwise ops (fvcore only).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@store_options
def flops_model(generator: str, generator_options: tuple[str, ...], attention: str | None, checkpoint: str | None,
                batch: int, counter: str, elementwise: bool, as_json: bool, out_dir: str, no_store: bool) -> None:
    """FLOPs of a generator per image, stage by stage (per call and per image), and the attention share.

    JSON: the top-level report keys (macs, gmacs, by_operator, ...) and ``calls_per_image`` are the
    main (first) stage's; ``gmacs_per_image`` and ``attention_share`` cover all stages; ``stages``
    lists each stage's name, calls_per_image, cfg_doubles_batch, macs and gmacs (one probe call on
    the batch), gmacs_per_call (one call per image, x2 under CFG), gmacs_per_image, attention_share.
    """
    target = generator_entry(generator, generator_options, attention, checkpoint)
    result = measure_command("flops", "model-flops", {"batch": batch, "counter": counter, "elementwise": elementwise},
                             target, "generator", out_dir, no_store)
    flops, params, attention_modules = (result.details[k] for k in ("flops", "params", "attention_modules"))
    main = flops.stages[0]
    summary = {"generator": generator, "info": result.details["info"], "params": params,
               "calls_per_image": main.stage.calls_per_image, "gmacs_per_image": flops.gmacs_per_image,
               "attention_share": flops.attention_share, "attention_modules": attention_modules,
               "stages": [s.as_json() for s in flops.stages], **main.report.as_json(), "run_id": result.run_id}
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.secho(f"{generator} (batch {batch})", bold=True)
    click.echo(f"  params: {params:,}")
    click.echo(f"  per image: {flops.gmacs_per_image:.6g} GMACs in {len(flops.stages)} stages")
    click.echo(f"  attention share: {100 * flops.attention_share:.2f}% in {len(attention_modules)} attention modules\n")
    rows = [(s.stage.name, f"{s.stage.calls_per_image:g}", "x2" if s.stage.cfg_doubles_batch else "-",
             f"{s.gmacs_per_call:.6g}", f"{s.gmacs_per_image:.6g}", f"{100 * s.attention_share:.2f}%")
            for s in flops.stages]
    rows.append(("total", "", "", "", f"{flops.gmacs_per_image:.6g}", f"{100 * flops.attention_share:.2f}%"))
    click.echo(tabulate(rows, headers=["stage", "calls/image", "CFG", "GMACs/call/image", "GMACs/image",
                                       "attention"], disable_numparse=True) + "\n")
    for s in flops.stages:
        _print_report(f"stage {s.stage.name}: one call on {batch} image(s)", s.report, {})
    click.echo(stored_line(result, out_dir))
