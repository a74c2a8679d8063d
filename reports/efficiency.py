"""The efficiency report: module FLOPs at the papers' settings, the resolution sweep with the
linear/softmax crossover (table and plot), CPU/GPU latency and memory ratios, and the decoding memory and
latency per token position of token-by-token generators (table and plot, with the cache crossover)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from lina_bench.api.errors import LinaBenchError
from lina_bench.reports.base import Report, provenance_line, setting_label

SWEEP_METRIC = re.compile(r"^gmacs@(\d+)px$")
DECODE_METRIC = re.compile(r"^(cache_bytes|ms_per_token)@(\d+)$")


def _setting_header(protocol: dict) -> str:
    grid = protocol.get("grid", ["?", "?"])
    return (f"C={protocol.get('dim')}, H={protocol.get('num_heads')}, "
            f"{protocol.get('prefix')}+{grid[0]}x{grid[1]}={protocol.get('tokens')} tokens, B={protocol.get('batch')}")


def _pivot(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Variant x setting values of ``metric``, rows and columns in the order the suite ran them."""
    picked = rows[rows.metric == metric]
    table = picked.pivot(index="variant", columns="setting", values="value")
    return table.loc[pd.unique(picked.variant), pd.unique(picked.setting)]


def flops_table(rows: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Variant x setting of the ``flops`` rows: "GMACs (change vs ``baseline`` in the same setting)"."""
    rows = rows.assign(setting=lambda f: f.job.map(setting_label))
    if rows.empty:
        return pd.DataFrame()
    gmacs = _pivot(rows, "gmacs")
    if baseline not in gmacs.index:
        return gmacs.map(lambda v: f"{v:.4f}")
    change = gmacs / gmacs.loc[baseline] - 1
    return pd.DataFrame({col: [f"{g:.4f} ({100 * c:+.1f}%)" for g, c in zip(gmacs[col], change[col], strict=True)]
                         for col in gmacs.columns}, index=gmacs.index)


def sweep_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Resolution x variant GMACs of the ``flops-sweep`` rows, with a tokens column."""
    records = {}
    for row in rows.itertuples():
        match = SWEEP_METRIC.match(row.metric)
        if match:
            records.setdefault(int(match[1]), {})[row.variant] = row.value
        elif row.metric.startswith("tokens@"):
            records.setdefault(int(row.metric[7:-2]), {})["tokens"] = int(row.value)
    frame = pd.DataFrame.from_dict(records, orient="index").sort_index()
    frame.index.name = "resolution_px"
    variants = [v for v in pd.unique(rows.variant) if v in frame.columns]
    return frame[["tokens", *variants]].astype({"tokens": int})


def crossover(frame: pd.DataFrame, variant: str, baseline: str, protocol: dict) -> str:
    """Where ``variant`` becomes cheaper than ``baseline``: exact from the closed forms when the
    variant has one, else interpolated between sweep points."""
    from lina_bench.evaluators.flops import analytic_macs

    patch, ratio = protocol["patch"], protocol["prefix_ratio"]
    try:
        for side in range(1, max(frame.index) // patch + 1):
            prefix = round(side * side * ratio)
            cost = [sum(analytic_macs(v, protocol["dim"], protocol["num_heads"], (side, side), prefix).values())
                    for v in (variant, baseline)]
            if cost[0] < cost[1]:
                return f"{prefix + side * side} tokens ({side * patch} px, {side}x{side} grid)"
        return "not within the sweep"
    except LinaBenchError:  # no closed form: interpolate the sweep
        diff = frame[variant] - frame[baseline]
        cheaper = diff[diff < 0]
        if cheaper.empty:
            return "not within the sweep"
        if cheaper.index[0] == frame.index[0]:
            return f"below {frame.tokens.iloc[0]} tokens (cheaper at every swept resolution)"
        i = frame.index.get_loc(cheaper.index[0])
        t0, t1, d0, d1 = frame.tokens.iloc[i - 1], frame.tokens.iloc[i], diff.iloc[i - 1], diff.iloc[i]
        return f"about {t0 + (t1 - t0) * d0 / (d0 - d1):.0f} tokens (interpolated)"


def speed_table(rows: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Variant x setting of the ``speed`` rows: "median ms (x ratio to ``baseline`` [IQR]), peak MiB".

    The ratio is the one the job measured side by side with the baseline (median and IQR of the
    per-repeat ratios) when the evaluator ran with ``baseline``; otherwise the ratio of the medians of
    two separate jobs (no IQR)."""
    rows = rows.assign(setting=lambda f: f.job.map(setting_label))
    if rows.empty:
        return pd.DataFrame()
    latency, memory = _pivot(rows, "latency_ms"), _pivot(rows, "peak_mem_mib")
    if (rows.metric == "latency_ratio").any():
        ratio, low, high = (_pivot(rows, m) for m in ("latency_ratio", "latency_ratio_p25", "latency_ratio_p75"))
        spread = {col: [f" [{a:.2f}-{b:.2f}]" for a, b in zip(low[col], high[col], strict=True)] for col in ratio}
    else:
        ratio = latency / latency.loc[baseline] if baseline in latency.index else latency * float("nan")
        spread = {col: [""] * len(ratio) for col in ratio}
    return pd.DataFrame({col: [f"{ms:.2f} ms (x{r:.2f}{iqr}), {mib:.1f} MiB" for ms, r, iqr, mib in
                               zip(latency[col], ratio[col], spread[col], memory[col], strict=True)]
                         for col in latency.columns}, index=latency.index)


def plot_sweep(frame: pd.DataFrame, path: Path, baseline: str) -> None:
    """Left: GMACs vs tokens (log-log). Right: each variant relative to ``baseline``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [c for c in frame.columns if c != "tokens"]
    fig, (absolute, relative) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    for variant in variants:
        style = {"linewidth": 2.2 if variant == baseline else 1.2, "marker": "o", "markersize": 3, "label": variant}
        absolute.plot(frame.tokens, frame[variant], **style)
        if baseline in frame.columns:
            relative.plot(frame.tokens, frame[variant] / frame[baseline], **style)
    absolute.set(xscale="log", yscale="log", xlabel="tokens (prefix + image)", ylabel="GMACs per module call",
                 title="Attention-module FLOPs vs resolution")
    relative.set(xscale="log", yscale="log", xlabel="tokens (prefix + image)", ylabel=f"FLOPs / {baseline}",
                 title=f"Relative to {baseline}")
    for ax in (absolute, relative):
        top = ax.secondary_xaxis("top")
        top.set_xticks(list(frame.tokens), [f"{r}px" for r in frame.index], fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    absolute.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def decode_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The ``decode-profile`` rows as position x (metric, line): ``cache_mib`` and ``ms_per_token`` of each
    line, a line being the job's target (``generator[variant]``), in the order the suite ran them."""
    records = [(int(m[2]), "cache_mib" if m[1] == "cache_bytes" else "ms_per_token", job.split("/", 1)[-1],
                value / 2**20 if m[1] == "cache_bytes" else value)
               for job, metric, value in zip(rows.job, rows.metric, rows.value, strict=True)
               if (m := DECODE_METRIC.match(metric))]
    frame = pd.DataFrame(records, columns=["position", "metric", "line", "value"])
    table = frame.pivot_table(index="position", columns=["metric", "line"], values="value", aggfunc="last")
    lines = list(pd.unique(frame.line))
    return table.reindex(columns=pd.MultiIndex.from_product([["cache_mib", "ms_per_token"], lines]))


def _variant(line: str) -> tuple[str, str | None]:
    """("generator", "variant") of a ``generator[variant]`` line label (variant None without brackets)."""
    match = re.fullmatch(r"(.*)\[(.*)\]", line)
    return (match[1], match[2]) if match else (line, None)


def cache_crossovers(frame: pd.DataFrame, baseline: str) -> dict[str, float | None]:
    """Per line of another variant than ``baseline`` of the same generator: the position from which its cache
    is smaller than the baseline's, interpolated linearly between measured positions (exact for a KV cache,
    which grows linearly); the first measured position when it is smaller everywhere, None when nowhere."""
    cache = frame["cache_mib"]
    found: dict[str, float | None] = {}
    for line in cache.columns:
        generator, variant = _variant(line)
        reference = f"{generator}[{baseline}]"
        if variant in (None, baseline) or reference not in cache.columns:
            continue
        diff = (cache[line] - cache[reference]).dropna()
        cheaper = diff[diff < 0]
        if cheaper.empty:
            found[line] = None
        elif cheaper.index[0] == diff.index[0]:
            found[line] = float(diff.index[0])
        else:
            i = diff.index.get_loc(cheaper.index[0])
            (p0, p1), (d0, d1) = diff.index[i - 1:i + 1], diff.iloc[i - 1:i + 1]
            found[line] = p0 + (p1 - p0) * d0 / (d0 - d1)
    return found


def plot_decode_profile(frame: pd.DataFrame, path: Path, crossovers: dict[str, float | None]) -> None:
    """Two panels over the token position (log x): the decoding memory in MiB (the KV cache grows linearly,
    a recurrent state stays flat; crossovers marked) and the latency of one decoding step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, latency) = plt.subplots(2, 1, sharex=True, figsize=(7, 7), dpi=120)
    for line in frame["cache_mib"].columns:
        style = {"marker": "o", "markersize": 3, "label": line}
        memory.plot(frame.index, frame["cache_mib"][line], **style)
        latency.plot(frame.index, frame["ms_per_token"][line], **style)
    for line, position in crossovers.items():
        if position is not None:
            memory.axvline(position, color="grey", linestyle="--", linewidth=0.8)
            memory.annotate(f"{line} smaller\nfrom token {position:.0f}", (position, memory.get_ylim()[1]),
                            xytext=(4, -4), textcoords="offset points", va="top", fontsize=7)
    memory.set(xscale="log", ylabel="cache / state (MiB)", title="Decoding memory per token position")
    latency.set(xscale="log", xlabel="token position", ylabel="ms per decoding step",
                title="Latency of one decoding step")
    for ax in (memory, latency):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class EfficiencyReport(Report):
    """FLOPs tables, resolution sweep + crossover + plot, latency/memory ratios, decode profile + plot,
    markdown summary."""

    reads = {"flops": ("gmacs",), "flops-sweep": ("gmacs@*px", "tokens@*px"),
             "speed": ("latency_ms", "peak_mem_mib", "latency_ratio*"),
             "decode-profile": ("cache_bytes@*", "ms_per_token@*")}

    def __init__(self, baseline: str = "softmax") -> None:
        self.baseline = baseline

    def write(self, results: pd.DataFrame, out_dir: Path) -> list[Path]:
        files: list[Path] = []
        sections = ["# Efficiency report", ""]
        if results.empty:
            sections.append("No results.")
        else:
            sections += [provenance_line(results), ""]

        flops, sweep, speed_rows = (self.select(results, name) for name in ("flops", "flops-sweep", "speed"))
        table = flops_table(flops, self.baseline) if not flops.empty else pd.DataFrame()
        if not table.empty:
            files.append(_csv(table, out_dir / "flops_modules.csv"))
            headers = {setting_label(r.job): _setting_header(r.protocol["evaluator"])
                       for r in flops[flops.metric == "gmacs"].itertuples()}
            sections += ["## Attention-module FLOPs", "",
                         f"GMACs per module call (fvcore, 1 multiply-add = 1 FLOP) and the change vs {self.baseline}.",
                         ""]
            sections += [f"- `{label}`: {text}" for label, text in headers.items()] + [""]
            sections += [table.to_markdown(), ""]

        frame = sweep_frame(sweep) if not sweep.empty else pd.DataFrame()
        if not frame.empty:
            protocol = sweep.protocol.iloc[0]["evaluator"]
            files.append(_csv(frame, out_dir / "flops_sweep.csv"))
            plot_sweep(frame, out_dir / "flops_sweep.png", self.baseline)
            files.append(out_dir / "flops_sweep.png")
            sections += [f"## Resolution sweep (GMACs; C={protocol['dim']}, H={protocol['num_heads']}, "
                         f"patch {protocol['patch']} px, prefix = {protocol['prefix_ratio']} x image tokens)", "",
                         frame.to_markdown(floatfmt=".2f"), "", "![FLOPs sweep](flops_sweep.png)", "",
                         f"### Where each variant becomes cheaper than {self.baseline}", ""]
            if self.baseline in frame.columns:
                sections += [f"- `{v}`: {crossover(frame, v, self.baseline, protocol)}"
                             for v in frame.columns if v not in ("tokens", self.baseline)]
            sections.append("")

        speed = speed_table(speed_rows, self.baseline) if not speed_rows.empty else pd.DataFrame()
        if not speed.empty:
            device = speed_rows.provenance.iloc[0]["device"]
            files.append(_csv(speed, out_dir / "speed.csv"))
            sections += [f"## Latency and peak memory ({device.get('gpu') or device.get('cpu')}, "
                         f"{device.get('torch_threads')} threads; measured side by side in one run)", "",
                         f"Median forward latency, its ratio to {self.baseline} (timed side by side with it: median "
                         "and [IQR] of the per-repeat ratios), and peak memory of one call.", "",
                         speed.to_markdown(), ""]
        decode_rows = self.select(results, "decode-profile")
        decode = decode_frame(decode_rows) if not decode_rows.empty else pd.DataFrame()
        if not decode.empty:
            crossovers = cache_crossovers(decode, self.baseline)
            table = decode.rename(columns={"cache_mib": "cache MiB", "ms_per_token": "ms/token"}, level=0)
            table.columns = [f"{line} {metric}" for metric, line in table.columns]
            files.append(_csv(table, out_dir / "decode_profile.csv"))
            plot_decode_profile(decode, out_dir / "decode_profile.png", crossovers)
            files.append(out_dir / "decode_profile.png")
            sections += ["## Decoding memory and latency per token position", "",
                         "The KV cache (softmax) or recurrent state held by all layers after the decoding step at "
                         "each position, and the step's median latency (decode-profile; CFG's rows included).", "",
                         table.to_markdown(floatfmt=".4g"), "", "![decode profile](decode_profile.png)", ""]
            sections += [f"- `{line}`: smaller than `{_variant(line)[0]}[{self.baseline}]`'s cache "
                         + (f"from token {position:.0f}" if position is not None else "at no measured position")
                         for line, position in crossovers.items()] + [""]
        summary = out_dir / "summary.md"
        summary.write_text("\n".join(sections))
        return [summary, *files]


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path)
    return path
