#!/usr/bin/env python3
"""Plant known plumbing bugs one at a time and check that the tests catch each of them.

Each mutation replaces one exact piece of source text in a temporary copy of the repository (the
files git knows, committed or not), then runs only the tests that should catch it, against that
copy (``PYTHONPATH`` puts the copy's ``lina_bench`` ahead of the editable install). A bug is
*caught* when those tests fail. The same tests first run once on the unmutated copy and must pass,
so a failure is the bug's doing. A mutation whose text is no longer in the source is reported as
stale: update it together with the code it guards.

Run it after touching protocol or plumbing code (seeds, labels, sample order, resume, the results
store, metric conventions); it takes about 6 minutes on 2 cores and stays out of CI:

    .venv/bin/python scripts/mutation_check.py [--only NAME ...] [--list]

Exit status: 0 when every bug is caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FOLDERS = ("models", "kernels", "evaluators", "reports")  # installed as lina_bench.<folder>


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PINS = "tests/test_sampling_protocol.py"
MUTATIONS = (
    Mutation("fid sample index off by one in sample_seed", "evaluators/fid_sources.py",
             "sample_seed(self.seed, i) for i in indices", "sample_seed(self.seed, i + 1) for i in indices", (PINS,)),
    Mutation("geneval image index off by one in sample_seed", "evaluators/geneval/generate.py",
             "sample_seed(seed, i, j) for i, j in batch", "sample_seed(seed, i, j + 1) for i, j in batch", (PINS,)),
    Mutation("sample_seed hash key changed", "lina_bench/api/generator.py",
             'f"lina-bench:{key}"', 'f"lina-bench/{key}"', (PINS,)),
    Mutation("class labels interleaved instead of blocked", "evaluators/fid_sources.py",
             "return index // self.per_class", "return index % (self.num_samples // self.per_class)", (PINS,)),
    Mutation("generated samples scored in label order (no npz permutation)", "evaluators/fid_sources.py",
             "return lina_npz_order(self.num_samples)", "return np.arange(self.num_samples)", (PINS,)),
    Mutation("npz permutation seed changed", "evaluators/fid_sources.py",
             "LINA_NPZ_SEED = 1337", "LINA_NPZ_SEED = 1338", (PINS,)),
    Mutation("FID metrics ignore the sample order", "evaluators/fid.py",
             "features = {name: value[order] for name, value in features.items()}",
             "features = {name: value for name, value in features.items()}",
             ("tests/test_fid_pipeline.py::test_finished_shards_are_reused_and_scored_in_npz_order",)),
    Mutation("reference images written into --save-png", "evaluators/fid.py",
             "ref_options = replace(options, save_png=None)", "ref_options = options",
             ("tests/test_fid_pipeline.py::test_generator_samples_saved_as_png_and_adm_npz",)),
    Mutation("speed throughput from the p75 latency instead of the median", "evaluators/speed.py",
             "return self.work_per_call / (self.median_ms / 1e3)", "return self.work_per_call / (self.p75_ms / 1e3)",
             ("tests/test_speed.py::test_speed_cli_json_and_suite_evaluators",)),
    Mutation("saved npz written at the order instead of its inverse", "evaluators/fid_reference.py",
             "else np.argsort(order)", "else order",
             ("tests/test_fid_pipeline.py::test_generator_samples_saved_as_png_and_adm_npz",)),
    Mutation("ADM IS splits of 1000 instead of 5000", "evaluators/fid_metrics.py",
             "ADM_IS_SPLIT = 5000", "ADM_IS_SPLIT = 1000", ("tests/test_fid_metrics.py",)),
    Mutation("blocked-label warning never given", "evaluators/fid.py",
             "    if seen < classes:\n", "    if seen < 0:\n", ("tests/test_fid_metrics.py",)),
    Mutation("FID resume recomputes every finished shard", "evaluators/fid.py",
             "todo = [s for s in mine if not _shard_valid(self.path(s))]", "todo = list(mine)",
             ("tests/test_fid_pipeline.py::test_finished_shards_are_reused_and_scored_in_npz_order",)),
    Mutation("GenEval generation redraws existing images", "evaluators/geneval/generate.py",
             "for j in range(images_per_prompt) if not sample_path(out, i, j).is_file()]",
             "for j in range(images_per_prompt)]",
             ("tests/test_geneval_pipeline.py::test_generation_resumes_without_redrawing",)),
    Mutation("results store's current view returns every run after --force", "lina_bench/engine/store.py",
             "if latest.get(r.job_key) == r.run_id]", "if r.job_key in latest]",
             ("tests/test_runner.py::test_failure_isolation_resume_and_force",)),
    Mutation("results store's current view breaks finished_at ties by run id", "lina_bench/engine/store.py",
             "'$.finished_at'), rowid", "'$.finished_at'), run_id",
             ("tests/test_results_import.py::test_current_is_the_last_finished_run_and_ties_go_to_the_last_stored",)),
    Mutation("results store's current view follows import order, not finished_at", "lina_bench/engine/store.py",
             "ORDER BY json_extract(provenance, '$.finished_at'), rowid", "ORDER BY rowid",
             ("tests/test_results_import.py::test_two_machines_merge_and_the_last_finished_run_is_current",)),
    Mutation("check results lets a quality metric get worse (direction flipped)", "lina_bench/engine/results_check.py",
             "worse = -self.change if self.higher_is_better else self.change",
             "worse = self.change if self.higher_is_better else -self.change", ("tests/test_check_results.py",)),
    Mutation("leaderboard merges columns of different protocols", "reports/leaderboard.py",
             'return {"evaluator": protocol.get("evaluator", {}), "target": kind,',
             'return {"target": kind} or {"evaluator": protocol.get("evaluator", {}), "target": kind,',
             ("tests/test_leaderboard.py",)),
    Mutation("leaderboard marks the worst value as best", "reports/leaderboard.py",
             "target = cells.max() if column.higher_is_better else cells.min()",
             "target = cells.min() if column.higher_is_better else cells.max()", ("tests/test_leaderboard.py",)),
    Mutation("lasad decay parameters ignore the device context after a transformers load",
             "models/attention/lasad.py", "torch.linspace(0, 1, num_heads, device=torch.get_default_device())",
             "torch.linspace(0, 1, num_heads)", ("tests/test_flops.py",)),
    Mutation("KID with polynomial degree 2", "evaluators/fid_metrics.py",
             "kid_kernel_poly_degree=3", "kid_kernel_poly_degree=2", ("tests/test_fid_metrics.py",)),
    Mutation("CLIP score without the clamp at 0", "evaluators/clip_score.py",
             ".sum(dim=-1).clamp(min=0))", ".sum(dim=-1))", ("tests/test_clip_score.py",)),
    Mutation("precision/recall: a point on the k-NN radius counted outside", "evaluators/fid_metrics.py",
             "<= radii[None, :]", "< radii[None, :]", ("tests/test_fid_metrics.py",)),
    Mutation("KV-gate resampling with nearest neighbour", "models/attention/gate.py",
             'mode="bilinear",\n                          align_corners=False)', 'mode="nearest")',
             ("tests/test_gate_resampling.py",)),
    Mutation("KV-gate resampling with align_corners=True", "models/attention/gate.py",
             "align_corners=False).view(heads", "align_corners=True).view(heads", ("tests/test_gate_resampling.py",)),
    Mutation("determinism evaluator compares a result with itself", "evaluators/sample_determinism.py",
             "for images, _ in runs[1:] + [(repeat, 0)]", "for images, _ in runs[:1]",
             ("tests/test_generator_contract.py",)),
    Mutation("Triton reduction uses only its first token slice", "kernels/lina_attn/ops.py",
             "return partial[:, :splits].sum(1), partial_vec[:, :splits].sum(1)",
             "return partial[:, 0], partial_vec[:, 0]",
             ("tests/test_kernels_triton.py::test_lina_attention_tiles_splits_and_token_blocks",)),
    Mutation("Triton reduction writes partial sums at the tuned split count, not the buffer's stride",
             "kernels/lina_attn/triton_kernels.py", "out = bh * SPLIT_STRIDE + split", "out = bh * SPLITS + split",
             ("tests/test_kernels_triton.py::test_lina_attention_tiles_splits_and_token_blocks",)),
    Mutation("Triton row weights loaded without the token mask (reads past the gate / row-stat rows)",
             "kernels/lina_attn/triton_kernels.py",
             "return tl.load(ptr + row * N + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)",
             "return tl.load(ptr + row * N + offs_n).to(tl.float32)", ("tests/test_kernels_bounds.py",)),
    Mutation("decayed kernel stores padded value columns", "kernels/decayed_attn/triton_kernels.py",
             "(scale * out).to(o_ptr.dtype.element_ty), mask=v_mask)",
             "(scale * out).to(o_ptr.dtype.element_ty), mask=row[:, None])", ("tests/test_kernels_bounds.py",)),
    Mutation("float32 head-dimension tiles 64 wide again (spills in every config)", "kernels/lina_attn/ops.py",
             "cap = 32 if dtype == torch.float32 else 64", "cap = 64",
             ("tests/test_kernels_triton.py::test_head_blocks_divide_the_head_dimension",)),
    Mutation("Triton kernel reads a plain Python global (compiles only in the interpreter)",
             "kernels/lina_attn/triton_kernels.py", "FEATURE_EPS = tl.constexpr(naive.FEATURE_EPS)",
             "FEATURE_EPS = 1e-6", ("tests/test_kernels_compile.py",)),
    Mutation("fvcore handle of the LINA custom op off by a factor", "evaluators/flops.py",
             "    return lina_forward_macs(get_shape(inputs[0]), get_shape(inputs[2]))",
             "    return 2 * lina_forward_macs(get_shape(inputs[0]), get_shape(inputs[2]))", ("tests/test_flops.py",)),
    Mutation("fvcore handle of the decayed custom op off by a factor", "evaluators/flops.py",
             "return chunked_decay_macs(get_shape(inputs[0]), get_shape(inputs[2]), int(chunk), bool(final_state))",
             "return 2 * chunked_decay_macs(get_shape(inputs[0]), get_shape(inputs[2]), int(chunk), "
             "bool(final_state))", ("tests/test_flops.py",)),
)


def copy_tree(dest: Path) -> None:
    """The files git knows (tracked and untracked-not-ignored), plus the links that make the copy's
    plugin folders importable as ``lina_bench.<folder>``."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for folder in PLUGIN_FOLDERS:
        (dest / "lina_bench" / folder).symlink_to(dest / folder, target_is_directory=True)


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=copy,
                          env=env, capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip() or f"exit {proc.returncode}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="run only mutations whose name contains one of these words")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or any(w in m.name for w in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name}  [{m.path}]  -> {' '.join(m.tests)}")
        return 0
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="lina-mutation-") as tmp:
        copy = Path(tmp) / "repo"
        copy_tree(copy)
        stale = [m.name for m in chosen if (copy / m.path).read_text().count(m.old) != 1]
        if stale:
            print("stale mutations (their text is not in the source exactly once):\n  " + "\n  ".join(stale))
            return 1
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        ok, output = run_tests(copy, tests)
        print(f"baseline: the selected tests {'pass' if ok else 'FAIL'} on the unmutated copy "
              f"({output.splitlines()[-1]})")
        if not ok:
            print(output[-4000:])
            return 1
        survivors = []
        for m in chosen:
            path = copy / m.path
            original = path.read_text()
            path.write_text(original.replace(m.old, m.new))
            passed, output = run_tests(copy, m.tests)
            path.write_text(original)
            print(f"{'NOT CAUGHT' if passed else 'caught    '}  {m.name}  ({output.splitlines()[-1]})", flush=True)
            if passed:
                survivors.append(m.name)
    print(f"\n{len(chosen) - len(survivors)}/{len(chosen)} planted bugs caught in {time.time() - start:.0f} s")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
