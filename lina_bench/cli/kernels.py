"""``lina-bench kernels compile``: prove every Triton kernel compiles for real GPUs, without one."""

from __future__ import annotations

import json

import click
from tabulate import tabulate


@click.group()
def kernels() -> None:
    """Triton kernels: ahead-of-time compilation for GPU targets."""


def _targets(value: str) -> tuple[int, ...]:
    archs = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        if not part.startswith("sm_") or not part[3:].isdigit():
            raise click.BadParameter(f"{part!r} is not a target like sm_80", param_hint="--target")
        archs.append(int(part[3:]))
    return tuple(archs)


def _verdict(row: dict, bad: list[dict]) -> str:
    if row["fits"]:
        return "yes"
    if row["error"]:
        return row["error"]
    return "NO" if row in bad else "no (autotuner skips it)"


@kernels.command("compile")
@click.option("--target", "targets", default="sm_80,sm_90", show_default=True, help="Comma-separated GPU targets.")
@click.option("--dtype", "dtypes", default="float32,bfloat16,float16", show_default=True,
              help="Comma-separated input dtypes.")
@click.option("--head-dim", "head_dims", default="16,32,64,96,128", show_default=True,
              help="Comma-separated head dimensions.")
@click.option("--json", "as_json", is_flag=True, help="Print every configuration as JSON.")
def compile_cmd(targets: str, dtypes: str, head_dims: str, as_json: bool) -> None:
    """Compile every kernel in every configuration the dispatcher launches (float32 / bfloat16 /
    float16, head dimensions 16-128, every flag, every autotune config) with triton.compile for each
    target; print registers,
    stack (spill) bytes and shared memory; exit 1 on a compile error or a launch none of whose autotune
    configs fits."""
    from lina_bench.kernels.aot import DTYPES, compile_all, unusable

    chosen = tuple(d.strip() for d in dtypes.split(",") if d.strip())
    unknown = [d for d in chosen if d not in DTYPES]
    if unknown or not chosen:
        raise click.BadParameter(f"dtypes must be among {', '.join(DTYPES)}, got {dtypes!r}", param_hint="--dtype")
    try:
        dims = tuple(int(d) for d in head_dims.split(",") if d.strip())
    except ValueError:
        raise click.BadParameter(f"{head_dims!r} is not a list of integers", param_hint="--head-dim") from None
    rows = compile_all(_targets(targets), chosen, dims, progress=not as_json)
    bad = unusable(rows)
    if as_json:
        click.echo(json.dumps({"rows": rows, "failed": len(bad)}, indent=1))
    else:
        table = [(r["kernel"], r["target"], r["dtype"], r["head_dim"], r["block_d"],
                  ",".join(k for k, v in r["flags"].items() if v) or "-",
                  " ".join(f"{k}={v}" for k, v in r["config"].items()), r.get("registers", "-"),
                  r.get("stack_bytes", "-"), r.get("shared_bytes", "-"), _verdict(r, bad)) for r in rows]
        click.echo(tabulate(table, headers=["kernel", "target", "dtype", "d", "block", "flags", "autotune config",
                                            "regs", "stack B", "shared B", "fits"], disable_numparse=True))
        click.echo(f"{sum(r['fits'] for r in rows)} of {len(rows)} configurations compile and fit; "
                   f"{len(bad)} make a launch impossible")
    click.get_current_context().exit(1 if bad else 0)
