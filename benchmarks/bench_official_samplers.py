"""Our samplers against the official ones on this CPU, side by side, on the tiny official-format checkpoints
of the fidelity tests; prints a summary and writes CSV + markdown.

    PYTHONPATH=LINA:mar python benchmarks/bench_official_samplers.py [--repeats 10] [--threads 1]

``LINA`` is a checkout of techmonsterwang/LINA (f13f7c3; its ``diffnext``), ``mar`` one of LTH14/mar
(fe470ac; its ``models``); the text-to-image pipeline's official text encoder also needs ``einops``. A family
whose official code is not importable is skipped with a message.
Nothing of theirs is in this repository: the script imports it from there, as the fixture scripts do.

Each setting times the official sampler and our ``official_sample`` (same checkpoint, batch and seed) in
turn, A B A B ..., after one warm-up each; the ratio is the official time over ours (ours' speed-up),
median and IQR of the per-repeat ratios. It also compares the two images (max |difference| and the share
of equal pixels), so a speed-up is never bought with a different result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lina_bench.api.generator import build_generator
from lina_bench.engine.provenance import cpu_model
from lina_bench.evaluators.timing import ratio_spread, time_interleaved

from bench_output import results_dir, write_csv

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))

# (setting, sampler options): LINA's class-to-image defaults (64 AR x 25 flow steps) and a short run, CFG
# rising linearly from 1 to 3; MAR with 16 AR steps and 25 DDPM steps, CFG 3 (linear).
LINA_SETTINGS = {"64 AR x 25 flow steps": dict(ar_steps=64, diffusion_steps=25),
                 "16 AR x 10 flow steps": dict(ar_steps=16, diffusion_steps=10)}
LINA_GUIDANCE = dict(guidance=3.0, min_guidance=1.0)
# Text-to-image: the tiny ``lina`` T2I pipeline (128 px, 64 tokens) at guidance 7 held constant (LINA's GenEval
# guidance), with all 64 tokens in 64 AR steps and in 16.
T2I_SETTINGS = {"64 AR x 25 flow steps": dict(ar_steps=64, diffusion_steps=25),
                "16 AR x 10 flow steps": dict(ar_steps=16, diffusion_steps=10)}
T2I_GUIDANCE = 7.0
MAR_SETTINGS = {"16 AR x 25 DDPM steps": dict(ar_steps=16, diffusion_steps=25)}
MAR_GUIDANCE = dict(guidance=3.0, guidance_schedule="linear", temperature=1.0)


def compare(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    delta = (ours.int() - theirs.int()).abs()
    return {"max_abs_diff": int(delta.max()), "exact_pct": 100 * float((delta == 0).float().mean())}


def lina_pairs(work: Path, batch: int) -> dict[str, tuple[Callable, Callable]]:
    """setting -> (official call, our call) for the tiny ``lina`` fixture pipeline."""
    import make_lina_fixtures as make
    from safetensors.torch import save_file

    make.stub_training_only_modules()
    case, source = make.CASES["lina"], FIXTURES / "lina" / "lina"
    folder = work / "lina"
    make.write_directory(folder, case)
    transformer, vae = make.case_weights(source, case["seed"])
    save_file(transformer, str(folder / "transformer" / "diffusion_pytorch_model.safetensors"))
    save_file(vae, str(folder / "vae" / "diffusion_pytorch_model.safetensors"))
    make.register_archs(importlib.import_module(f"diffnext.models.transformers.{case['module']}"))
    importlib.import_module("diffnext.models.autoencoders.autoencoder_kl_mar")
    from diffnext.pipelines.builder import build_pipeline

    pipe = build_pipeline(str(folder), "nova_c2i", precison="float32")
    labels = list(range(1, batch + 1))
    pairs = {}
    for setting, steps in LINA_SETTINGS.items():
        gen = build_generator("lina", {"archs": str(folder / "archs.json"), **steps, **LINA_GUIDANCE},
                              checkpoint=str(folder))

        def official(steps=steps) -> torch.Tensor:
            images = pipe(prompt=labels, num_inference_steps=steps["ar_steps"],
                          num_diffusion_steps=steps["diffusion_steps"], guidance_scale=LINA_GUIDANCE["guidance"],
                          min_guidance_scale=LINA_GUIDANCE["min_guidance"], generator=torch.Generator().manual_seed(0),
                          disable_progress_bar=True, output_type="np").images
            return torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2)

        pairs[f"LINA (lina), {setting}, batch {batch}"] = (official, partial(gen.official_sample, labels, 0))
    return pairs


def lina_t2i_pairs(work: Path, batch: int) -> dict[str, tuple[Callable, Callable]]:
    """setting -> (official call, our call) for the tiny ``lina`` text-to-image fixture pipeline."""
    import make_lina_fixtures as c2i
    import make_lina_t2i_fixtures as make

    c2i.stub_training_only_modules()
    case = make.CASES["lina"]
    folder = work / "lina_t2i"
    make.write_directory(folder, case)
    make.write_weights(folder, make.case_weights(FIXTURES / "lina_t2i" / "lina", case["seed"]))
    c2i.register_archs(importlib.import_module(f"diffnext.models.transformers.{case['module']}"))
    for module in ("autoencoders.autoencoder_kl", "text_encoders.phi"):
        importlib.import_module(f"diffnext.models.{module}")
    from diffnext.pipelines.builder import build_pipeline

    pipe = build_pipeline(str(folder), "nova", precison="float32")
    for key in ("partial_rotary_factor", "rope_theta"):  # as the fixture script: transformers 5's config layout
        setattr(pipe.text_encoder.config, key, pipe.text_encoder.config.rope_parameters[key])
    prompts = (case["prompts"] * batch)[:batch]
    pairs = {}
    for setting, steps in T2I_SETTINGS.items():
        gen = build_generator("lina", {"archs": str(folder / "archs.json"), **steps, "guidance": T2I_GUIDANCE},
                              checkpoint=str(folder))

        def official(steps=steps) -> torch.Tensor:
            images = pipe(prompt=prompts, num_inference_steps=steps["ar_steps"],
                          num_diffusion_steps=steps["diffusion_steps"], guidance_scale=T2I_GUIDANCE,
                          generator=torch.Generator().manual_seed(0), disable_progress_bar=True,
                          output_type="np").images
            return torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2)

        pairs[f"LINA text-to-image, {setting}, batch {batch}"] = (official, partial(gen.official_sample, prompts, 0))
    return pairs


def mar_pairs(work: Path, batch: int) -> dict[str, tuple[Callable, Callable]]:
    """setting -> (official call, our call) for the tiny MAR fixture checkpoint."""
    import make_mar_fixtures as make

    from models.mar import MAR  # the official package (LTH14/mar), not lina_bench's models

    if not torch.cuda.is_available():  # the official sampler calls .cuda() on its tensors: keep them on the CPU
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
    spec = json.loads((FIXTURES / "mar" / "spec.json").read_text())
    cases = json.loads((FIXTURES / "mar" / "cases.json").read_text())
    checkpoint, vae_file = work / "checkpoint-last.pth", work / "kl16.ckpt"
    payload = make.mar_checkpoint(spec["mar"])
    torch.save(payload, checkpoint)
    vae_state = make.official_state(spec["vae"], make.SEEDS["vae"])
    torch.save({"model": vae_state}, vae_file)
    vae_config = cases["vae_config"]
    official_vae = make._official_vae(**vae_config)
    official_vae.load_state_dict(vae_state)
    labels = list(range(batch))
    pairs = {}
    for setting, steps in MAR_SETTINGS.items():
        model = MAR(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_sampling_steps=str(steps["diffusion_steps"]),
                    **cases["mar_config"]).eval()
        model.load_state_dict(payload["model_ema"])
        gen = build_generator("mar", {**cases["mar_config"], "vae": str(vae_file), "vae_ch": vae_config["ch"],
                                      "vae_ch_mult": list(vae_config["ch_mult"]), **steps, **MAR_GUIDANCE},
                              checkpoint=str(checkpoint))

        def official(model=model, steps=steps) -> torch.Tensor:
            torch.manual_seed(0)
            np.random.seed(0)
            tokens = model.sample_tokens(bsz=batch, num_iter=steps["ar_steps"], cfg=MAR_GUIDANCE["guidance"],
                                         cfg_schedule=MAR_GUIDANCE["guidance_schedule"], labels=torch.tensor(labels),
                                         temperature=MAR_GUIDANCE["temperature"])
            images = official_vae.decode(tokens / 0.2325)
            return torch.from_numpy(np.round(np.clip(((images + 1) / 2).numpy() * 255, 0, 255)).astype(np.uint8))

        pairs[f"MAR, {setting}, batch {batch}"] = (official, partial(gen.official_sample, labels, 0))
    return pairs


# family -> (pairs, the official modules it imports, batch)
FAMILIES = {"lina": (lina_pairs, ("diffnext",), 4), "lina-t2i": (lina_t2i_pairs, ("diffnext", "einops"), 4),
            "mar": (mar_pairs, ("models.mar",), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared machine)")
    parser.add_argument("--out", type=Path, default=None, help="folder for CSV + markdown (default: "
                        "benchmarks/results/<cpu>)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for family in args.families:
            make_pairs, modules, batch = FAMILIES[family]
            try:
                for name in modules:
                    importlib.import_module(name)
            except ImportError as exc:
                print(f"skipped {family}: its official code is not importable ({exc}); put it on PYTHONPATH")
                continue
            folder = Path(work) / family
            folder.mkdir()
            for setting, (official, ours) in make_pairs(folder, batch).items():
                images = compare(ours(), official())
                timings = time_interleaved({"official": official, "ours": ours}, "cpu", args.repeats, warmup=1)
                median, p25, p75 = ratio_spread(timings["official"], timings["ours"])
                rows.append({"setting": setting, "official_s": timings["official"].median_ms / 1e3,
                             "ours_s": timings["ours"].median_ms / 1e3, "speedup": median, "speedup_p25": p25,
                             "speedup_p75": p75, **images})
                print(f"{setting}: official {rows[-1]['official_s']:.3f} s, ours {rows[-1]['ours_s']:.3f} s, "
                      f"ours' speed-up x{median:.3f} [{p25:.3f}-{p75:.3f}], images max |diff| "
                      f"{images['max_abs_diff']}, {images['exact_pct']:.3f} % equal", flush=True)
    if not rows:
        sys.exit("nothing measured: neither official code base is importable")
    out = results_dir(f"{cpu_model()} ({args.threads} threads)", False, args.out)
    write_csv(out / "official_samplers.csv", rows)
    lines = [f"# Our samplers against the official ones on {cpu_model()}", "",
             f"torch {torch.__version__}, python {platform.python_version()}, {args.threads} thread(s); tiny "
             f"official-format checkpoints of the fidelity tests; median of {args.repeats} calls each, interleaved "
             "(A B A B ...) after one warm-up; speed-up = official time / ours per repeat, median (IQR).", "",
             "| setting | official s | ours s | ours' speed-up (IQR) | images: max abs diff | equal pixels |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['setting']} | {r['official_s']:.3f} | {r['ours_s']:.3f} | {r['speedup']:.3f} "
              f"({r['speedup_p25']:.3f}-{r['speedup_p75']:.3f}) | {r['max_abs_diff']} | {r['exact_pct']:.3f} % |"
              for r in rows]
    (out / "official_samplers.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/official_samplers.csv and .md")


if __name__ == "__main__":
    main()
