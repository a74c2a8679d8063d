"""Benchmark the real generator families side by side; prints a summary and writes CSV + markdown.

    python benchmarks/bench_generators.py                  # sizes for the device: GPU if there is one, else CPU
    python benchmarks/bench_generators.py --sizes tiny --repeats 2 --out /tmp/bench   # smoke run (seconds)
    python benchmarks/bench_generators.py --pairs lina --repeats 3    # one comparison only

Pairs (A = softmax, B = linear), random weights, each pair timed side by side in one run (A B A B ...;
CUDA events on GPU); the ratio is A's time over B's (B's speed-up), median and IQR of the per-repeat ratios:
  1. DiT vs LiT: images/s and peak memory of ``sample`` at each resolution, same diffusion steps;
  2. LlamaGen vs LASADGen: latency of one decoding step and the KV-cache / state bytes at each position
     (the decode-profile evaluator's measured call, ``decode_call``);
  3. LINA vs NOVA: images/s and peak memory of ``sample`` (the tiny models; on GPU the released models' size,
     d48w1536, at 256 px with the official sampling settings), and one step of the image transformer of a
     1024 px text-to-image config (its cost probe, with CFG's rows);
  4. MAR: images/s and peak memory of ``sample`` (the tiny model).
Peak memory of one call after a warm-up: the CUDA allocator's peak over what was allocated before; on CPU
the peak resident-set growth (VmHWM, reset through /proc/self/clear_refs, glibc set to return blocks of
64 KiB or more to the system when freed, as the speed evaluator measures it, here in this process).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from lina_bench.api.generator import Generator, build_generator, placeholder_conditions, sample_seed
from lina_bench.engine.provenance import cpu_model
from lina_bench.evaluators.decode_profile import decode_call
from lina_bench.evaluators.speed import rss_peak_growth
from lina_bench.evaluators.timing import Timing, ratio_spread, time_interleaved
from lina_bench.models.dit import DiTGenerator
from lina_bench.models.llamagen.generator import LlamaGenGenerator
from lina_bench.models.mar.generator import MARGenerator

from bench_output import results_dir, write_csv

# A random VAE with SD's 8x downsampling but 32 channels: on CPU the (shared) decoder would dwarf the transformers.
SMALL_VAE = {"block_out_channels": [32] * 4, "layers_per_block": 1, "norm_num_groups": 8}
# The text-to-image transformer config of the official LINA/NOVA layout (SDXL VAE, 8x; at 1024 px 64 x 64 image
# tokens after a 32 x 32 prefix); ``image_size`` and ``arch`` come from the size preset.
T2I_CONFIG = {"image_dim": 4, "image_size": [1024, 1024], "image_stride": 8, "text_token_dim": 2560,
              "text_token_len": 256, "video_base_size": [1, 32, 32], "image_base_size": [64, 64]}
T2I_ARCHS = {  # arch names of our own for the reduced CPU and smoke-test sizes (the official table has the full ones)
    "video_encoders": {"vit_d2w256": {"depth": 2, "embed_dim": 256, "num_heads": 4},
                       "vit_d2w32": {"depth": 2, "embed_dim": 32, "num_heads": 2}},
    "image_encoders": {"vit_d4w256": {"depth": 4, "embed_dim": 256, "num_heads": 4, "image_model": True},
                       "vit_d2w32": {"depth": 2, "embed_dim": 32, "num_heads": 2, "image_model": True}},
    "image_decoders": {"mlp_d2w256": {"depth": 2, "embed_dim": 256}, "mlp_d2w32": {"depth": 2, "embed_dim": 32}},
}
# The size of the released LINA checkpoints ("d48w1536": condition encoder, image transformer, head).
D48W1536 = ["vit_d16w1536", "vit_d32w1536", "mlp_d6w1536"]
# The class-to-image config of the official layout (KL-16 VAE: 16 channels, 16x); size and arch from the preset.
C2I_CONFIG = {"image_dim": 16, "image_stride": 16}
TINY_LLAMAGEN = LlamaGenGenerator.test_configs["llamagen-tiny"]
SIZES: dict[str, dict[str, Any]] = {
    "cpu": {"dit": {"model": "DiT-S/2", "depth": 4, "diffusion_steps": 2, "guidance": 1.5, "vae_config": SMALL_VAE},
            "dit_resolutions": [256, 512], "dit_batch": 1,
            "llamagen": {"model": "GPT-B", "n_layer": 4}, "positions": [256, 1024, 4096],
            "lina_batch": 4, "c2i": None,
            "t2i": {"px": 1024, "arch": ["vit_d2w256", "vit_d4w256", "mlp_d2w256"], "dtype": "float32"},
            "mar_batch": 4},
    "gpu": {"dit": {"model": "DiT-XL/2", "diffusion_steps": 50, "guidance": 1.5},
            "dit_resolutions": [256, 512], "dit_batch": 8,
            "llamagen": {"model": "GPT-B"}, "positions": [256, 1024, 4096],
            "lina_batch": 16, "c2i": {"px": 256, "arch": D48W1536, "dtype": "bfloat16"},
            "t2i": {"px": 1024, "arch": D48W1536, "dtype": "bfloat16"},
            "mar_batch": 16},
    "tiny": {"dit": {k: v for k, v in DiTGenerator.test_configs["dit-tiny"].items() if k != "input_size"},
             "dit_resolutions": [32], "dit_batch": 1,
             "llamagen": {k: v for k, v in TINY_LLAMAGEN.items() if k != "image_size"}, "positions": [4, 8],
             "lina_batch": 2, "c2i": {"px": 32, "arch": ["vit_d2w32", "vit_d2w32", "mlp_d2w32"], "dtype": "float32"},
             "t2i": {"px": 256, "arch": ["vit_d2w32", "vit_d2w32", "mlp_d2w32"], "dtype": "float32"},
             "mar_batch": 2},
}


def set_cpu_allocator() -> None:
    """glibc returns every freed block of 64 KiB or more to the system, so that freed tensors do not hide
    in malloc's cache and the resident set follows what torch holds (the speed evaluator's setting)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 0)  # M_TRIM_THRESHOLD


def peak_mib(call: Callable[[], object], device: str) -> float:
    """Peak memory of one ``call`` above what was held before, in MiB (see the module docs)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return rss_peak_growth(call) / 2**20


def sampler(generator: Generator, batch: int) -> Callable[[], torch.Tensor]:
    """One ``sample`` call of ``batch`` placeholder conditions with per-sample seeds."""
    conditions = placeholder_conditions(generator.info(), batch)
    seeds = [sample_seed(0, i) for i in range(batch)]
    return lambda: generator.sample(conditions, seeds)


def side_by_side(calls: dict[str, Callable[[], object]], device: str, repeats: int) -> dict[str, Timing]:
    """``time_interleaved`` after one warm-up call each, without autograd."""
    with torch.no_grad():
        return time_interleaved(calls, device, repeats, warmup=1)


def pair_row(pair: str, measure: str, setting: str, names: tuple[str, str], timings: dict[str, Timing],
             work: float, unit: str, memory: tuple[float, float] | None, memory_unit: str = "peak MiB") -> dict:
    """One CSV row: both values (``work`` / median seconds, or the median ms when ``unit`` is "ms"), the
    time ratio A / B (median and IQR of the per-repeat ratios) and the memory of each and its ratio."""
    a, b = (timings[n] for n in names)
    value = (lambda t: t.median_ms) if unit == "ms" else (lambda t: work / (t.median_ms / 1e3))
    median, p25, p75 = ratio_spread(a, b)
    row = {"pair": pair, "measure": measure, "setting": setting, "a": names[0], "b": names[1], "unit": unit,
           "a_value": value(a), "b_value": value(b), "speedup_b": median, "speedup_b_p25": p25,
           "speedup_b_p75": p75, "memory_unit": memory_unit}
    a_mem, b_mem = memory or (float("nan"), float("nan"))
    row.update({"a_memory": a_mem, "b_memory": b_mem, "memory_ratio_a_b": a_mem / b_mem if b_mem else float("nan")})
    return row


def sample_pair(pair: str, setting: str, builds: dict[str, tuple[str, dict]], batch: int, device: str,
                repeats: int) -> dict:
    """images/s and peak memory of ``sample`` for two generators built from (name, options)."""
    gens = {label: build_generator(name, options).to(device) for label, (name, options) in builds.items()}
    calls = {label: sampler(gen, batch) for label, gen in gens.items()}
    timings = side_by_side(calls, device, repeats)
    with torch.no_grad():
        memory = tuple(peak_mib(call, device) for call in calls.values())
    return pair_row(pair, "sample", setting, tuple(gens), timings, batch, "images/s", memory)


def dit_rows(size: dict, device: str, repeats: int) -> list[dict]:
    options = size["dit"]
    vae_factor = 2 ** (len(options.get("vae_config", {}).get("block_out_channels", [0] * 4)) - 1)
    rows = []
    for px in size["dit_resolutions"]:
        base = {**options, "input_size": px // vae_factor}
        rows.append(sample_pair("DiT vs LiT", f"{px} px", {"dit[softmax]": ("dit", base),
                                                          "dit[lit]": ("dit", {**base, "attention": "lit"})},
                                size["dit_batch"], device, repeats))
        print(f"done DiT vs LiT {px} px", flush=True)
    return rows


def llamagen_rows(size: dict, device: str, repeats: int) -> list[dict]:
    """Per position: both generators' decoding step (the decode-profile evaluator's call, batch 1 with CFG's
    rows) timed side by side, and their cache bytes. ``image_size`` makes the sequence long enough."""
    positions, options = size["positions"], size["llamagen"]
    side = int((max(positions) + 1) ** 0.5 - 1e-9) + 1  # tokens per side: side^2 > the last position
    factor = 2 ** (len(options.get("vq_ch_mult", (1, 1, 2, 2, 4))) - 1)  # the VQ's downsampling
    gens = {f"llamagen[{v}]": build_generator("llamagen", {**options, "attention": v,
                                                           "image_size": factor * side}).to(device)
            for v in ("softmax", "lasad")}
    rows = []
    for p in positions:
        calls, cache = {}, []
        for label, gen in gens.items():
            calls[label], nbytes = decode_call(gen, 1, p)
            cache.append(nbytes / 2**20)
        timings = side_by_side(calls, device, repeats)
        rows.append(pair_row("LlamaGen vs LASADGen", "decode step", f"position {p}", tuple(gens), timings, 1, "ms",
                             tuple(cache), "cache MiB"))
        print(f"done LlamaGen vs LASADGen position {p}", flush=True)
    return rows


def lina_rows(size: dict, device: str, repeats: int) -> list[dict]:
    """``sample`` of both (the tiny models, or the preset's class-to-image config with random weights at the
    official sampling settings), and one image-transformer step of the text-to-image config."""
    variants = ("softmax", "lina")
    with tempfile.TemporaryDirectory() as tmp:
        def config(kind: str, fields: dict) -> dict:
            path, archs = Path(tmp) / f"{kind}.json", Path(tmp) / "archs.json"
            px = size[kind]["px"]
            path.write_text(json.dumps({**fields, "image_size": [px, px], "arch": size[kind]["arch"]}))
            archs.write_text(json.dumps(T2I_ARCHS))
            return {"config": str(path), "archs": str(archs), "dtype": size[kind]["dtype"]}

        c2i = size["c2i"]
        if c2i is None:
            builds, setting = {f"lina[{v}]": ("lina", {"attention": v}) for v in variants}, "tiny (32 px, 2x2 tokens)"
        else:
            options = config("c2i", C2I_CONFIG)
            builds = {f"lina[{v}]": ("lina", {**options, "attention": v}) for v in variants}
            setting = f"{c2i['px']} px, {'/'.join(c2i['arch'])}, official sampling settings"
        rows = [sample_pair("LINA vs NOVA", setting, builds, size["lina_batch"], device, repeats)]
        print("done LINA vs NOVA sample", flush=True)
        steps = {}
        for variant in variants:
            gen = build_generator("lina", {**config("t2i", T2I_CONFIG), "attention": variant}).to(device)
            stage = gen.cost_probes(1)[0]  # the image transformer, batch 1 (doubled by CFG, as sampling runs it)
            inputs = tuple(torch.cat([t] * stage.batch_multiplier) for t in stage.inputs)
            steps[f"lina[{variant}]"] = lambda module=stage.module, inputs=inputs: module(*inputs)
        timings = side_by_side(steps, device, repeats)
        with torch.no_grad():
            memory = tuple(peak_mib(call, device) for call in steps.values())
    px = size["t2i"]["px"]
    rows.append(pair_row("LINA vs NOVA", "t2i transformer step", f"{px} px, {'/'.join(size['t2i']['arch'])}",
                         tuple(steps), timings, 1, "ms", memory))
    print("done LINA vs NOVA t2i step", flush=True)
    return rows


def mar_rows(size: dict, device: str, repeats: int) -> list[dict]:
    gen = build_generator("mar", MARGenerator.test_configs["mar-tiny"]).to(device)
    call = sampler(gen, size["mar_batch"])
    timing = side_by_side({"mar": call}, device, repeats)["mar"]
    with torch.no_grad():
        memory = peak_mib(call, device)
    return [{"pair": "MAR", "measure": "sample", "setting": "mar-tiny", "a": "mar[softmax]", "unit": "images/s",
             "a_value": size["mar_batch"] / (timing.median_ms / 1e3), "memory_unit": "peak MiB", "a_memory": memory}]


PAIRS = {"dit": dit_rows, "llamagen": llamagen_rows, "lina": lina_rows, "mar": mar_rows}


def fmt(value: Any, digits: int = 3) -> str:
    return "" if value is None or value != value else f"{value:.{digits}g}"


def markdown(rows: list[dict], header: list[str]) -> str:
    lines = [*header, "", "| pair | measure | setting | A | B | A | B | unit | B speed-up (IQR) | A mem | B mem | "
             "memory | A/B mem |", "|---|---|---|---|---|---:|---:|---|---:|---:|---:|---|---:|"]
    for r in rows:
        speedup = (f"{r['speedup_b']:.2f} ({r['speedup_b_p25']:.2f}-{r['speedup_b_p75']:.2f})"
                   if "speedup_b" in r else "")
        lines.append(f"| {r['pair']} | {r['measure']} | {r['setting']} | {r['a']} | {r.get('b', '')} | "
                     f"{fmt(r['a_value'])} | {fmt(r.get('b_value'))} | {r['unit']} | {speedup} | "
                     f"{fmt(r['a_memory'])} | {fmt(r.get('b_memory'))} | {r['memory_unit']} | "
                     f"{fmt(r.get('memory_ratio_a_b'))} |")
    return "\n".join(lines) + "\n"


def settings_lines(size_name: str, size: dict, repeats: int) -> list[str]:
    """The sizes and settings of every pair, for the markdown header."""
    px = size["t2i"]["px"]
    dit = {k: v for k, v in size["dit"].items() if k != "vae_config"}
    vae = f"random VAE {size['dit']['vae_config']}" if "vae_config" in size["dit"] else "SD-VAE architecture, random"
    c2i = size["c2i"]
    lina_sample = ("the tiny models (32 px, float64)" if c2i is None else
                   f"the class-to-image config at {c2i['px']} px with arch {c2i['arch']} ({c2i['dtype']}; KL-16 VAE "
                   "architecture, random), the official sampling settings (64 AR steps or one per token if fewer, "
                   "25 flow steps, CFG 5)")
    return [f"Sizes `{size_name}`, median of {repeats} calls per generator after one warm-up, random weights.", "",
            f"- DiT vs LiT: {dit}, {vae}; batch {size['dit_batch']}; resolutions {size['dit_resolutions']} px.",
            f"- LlamaGen vs LASADGen: {size['llamagen']}, batch 1 with CFG (2 rows); one decoding step at "
            f"positions {size['positions']} (image size set so that the sequence holds the last position).",
            f"- LINA vs NOVA: `sample` of {lina_sample}, batch {size['lina_batch']}; the text-to-image "
            f"transformer config at {px} px ({(px // 16) ** 2} image tokens after a {(px // 32) ** 2}-token prefix) "
            f"with arch {size['t2i']['arch']} ({size['t2i']['dtype']}), one image-transformer step, batch 1 with "
            "CFG (2 rows).",
            f"- MAR: mar-tiny, batch {size['mar_batch']}.", "",
            "B speed-up = A's time / B's time per repeat (median and IQR); A/B mem = memory ratio (cache bytes "
            "for the decoding step, peak memory of one call otherwise)."]


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--sizes", choices=list(SIZES), default="gpu" if cuda else "cpu")
    parser.add_argument("--repeats", type=int, default=10 if cuda else 5)
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS),
                        help="which comparisons to run (default: all); the CSV and markdown hold those run")
    parser.add_argument("--positions", type=int, nargs="+", help="decoding positions (default: the sizes')")
    parser.add_argument("--dit-resolutions", type=int, nargs="+", help="DiT/LiT image sizes in px")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); on a CPU shared with "
                        "other jobs 1 thread avoids OpenMP threads waiting on each other")
    parser.add_argument("--out", type=Path, default=None, help="Folder for CSV + markdown (default: "
                        "benchmarks/results/<device>)")
    args = parser.parse_args()
    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    size = {**SIZES[args.sizes], **{k: v for k, v in (("positions", args.positions),
                                                      ("dit_resolutions", args.dit_resolutions)) if v}}
    gpu = device.startswith("cuda")
    if not gpu:
        set_cpu_allocator()
    card = torch.cuda.get_device_name() if gpu else f"{cpu_model()} ({torch.get_num_threads()} threads)"
    rows = [row for pair in args.pairs for row in PAIRS[pair](size, device, args.repeats)]
    out = results_dir(card, gpu, args.out)
    write_csv(out / "generators.csv", rows)
    header = [f"# Generator benchmark on {card}", "",
              f"torch {torch.__version__}, python {platform.python_version()}, {torch.get_num_threads()} threads, "
              f"device {device}.", "", *settings_lines(args.sizes, size, args.repeats)]
    (out / "generators.md").write_text(markdown(rows, header))
    print("\nsummary (B speed-up = A time / B time, median [IQR]; memory A/B):")
    for r in rows:
        if "speedup_b" in r:
            print(f"  {r['pair']:<21} {r['measure']:<21} {r['setting']:<32} {r['b']} vs {r['a']}: "
                  f"x{r['speedup_b']:.2f} [{r['speedup_b_p25']:.2f}-{r['speedup_b_p75']:.2f}], "
                  f"{r['memory_unit']} A/B {fmt(r['memory_ratio_a_b'])}")
        else:
            print(f"  {r['pair']:<21} {r['measure']:<21} {r['setting']:<32} {r['a_value']:.3g} {r['unit']}, "
                  f"{fmt(r['a_memory'])} {r['memory_unit']}")
    print(f"wrote {out}/generators.csv and .md")


if __name__ == "__main__":
    main()
