#!/usr/bin/env bash
# One prepared GPU check for a lent CUDA machine: everything the kernels need measured, in one call.
#
#   bash scripts/gpu_check.sh [OUT]        # OUT: logs and summary (default: gpu-check-out)
#
# Steps, each with its own time limit (8 minutes in all); a failing or timed-out step is reported and
# the next one still runs; every step's log is written as it finishes:
#   1. gpu-tests        the Triton kernel tests on the GPU: compiled kernels against the PyTorch
#                       references in float32, bfloat16 and float16, forward and every gradient, gated
#                       and not, odd token counts;
#   2. kernel-configs   scripts/kernel_configs_gpu.py: every autotune config of every kernel (and the decayed
#                       op's candidate warps/stages) compiled and checked against the reference at N = 5120,
#                       one process each, so a config that faults or computes wrong values is named;
#   3. kernels-compile  `lina-bench kernels compile` for this card's architecture (registers, spills,
#                       shared memory of every launch configuration);
#   4. benchmark        benchmarks/bench_attention_kernels.py at the README's goal sizes (width 1536,
#                       16 heads, batch 8, bfloat16; N = 320, 5120, 20480): lina_attention vs SDPA, the
#                       official fp32 math and flash-linear-attention where installed, bytes moved and
#                       the fraction of peak bandwidth, the lina module vs softmax; it writes CSV and
#                       markdown under benchmarks/results/<gpu-name>/;
#   5. generators       benchmarks/bench_generators.py --pairs lina at the GPU sizes: LINA against NOVA at the
#                       released models' size (d48w1536, random weights): `sample` at 256 px with the official
#                       settings, and one 1024 px text-to-image transformer step (generators.csv / .md there).
# It needs the repository and a CUDA torch (the project's .venv, or PYTHON=...), nothing else.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check-out}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.md"

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"; then
    echo "error: no CUDA device visible to $PY; this check measures GPUs only" >&2
    exit 2
fi
ARCH=$("$PY" -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'sm_{m}{n}')")
CARD=$("$PY" -c "import torch; print(torch.cuda.get_device_name())")
echo "# GPU check on $CARD ($ARCH), $(date -u +%Y-%m-%dT%H:%MZ)" > "$SUMMARY"

failed=0
step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to OUT/NAME.log, one summary line
    local name=$1 limit=$2 start rc status
    shift 2
    if [ "$limit" -le 0 ]; then
        echo "- $name: skipped (limit 0)" | tee -a "$SUMMARY"
        return
    fi
    echo "== $name (limit ${limit}s)"
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status="ok" ;;
        124|137) status="TIMED OUT after ${limit}s"; failed=1 ;;
        *) status="FAILED (exit $rc)"; failed=1 ;;
    esac
    echo "- $name: $status in $(( $(date +%s) - start ))s (log: $OUT/$name.log)" | tee -a "$SUMMARY"
}

# Step limits in seconds (tests, configs, compile, benchmark, generators; 0 skips a step); override to fit a
# lease.
read -r LIMIT_TESTS LIMIT_CONFIGS LIMIT_COMPILE LIMIT_BENCH LIMIT_GENERATORS <<< \
    "${GPU_CHECK_LIMITS:-150 60 40 130 100}"
# The tests check each kernel's first autotune config (no timing of the others per test shape); the
# benchmark autotunes.
step gpu-tests "$LIMIT_TESTS" env LINA_BENCH_AUTOTUNE=off "$PY" -m pytest -q -p no:cacheprovider \
    tests/test_kernels_triton.py
step kernel-configs "${LIMIT_CONFIGS:-0}" "$PY" scripts/kernel_configs_gpu.py --tokens 5120 --dtype bfloat16
step kernels-compile "$LIMIT_COMPILE" env -u TRITON_INTERPRET "$PY" -m lina_bench.cli kernels compile \
    --target "$ARCH" --head-dim 64,96
step benchmark "$LIMIT_BENCH" "$PY" benchmarks/bench_attention_kernels.py --device cuda --tokens 320 5120 20480 \
    --width 1536 --heads 16 --batch 8 --dtype bfloat16 --repeats 20
step generators "${LIMIT_GENERATORS:-0}" "$PY" benchmarks/bench_generators.py --device cuda --sizes gpu --pairs lina \
    --repeats 3

{
    echo
    echo "## Test result"
    tail -n 3 "$OUT/gpu-tests.log"
    echo
    echo "## Launch configurations on this GPU"
    grep -v ': ok: ' "$OUT/kernel-configs.log" | cut -c1-240
    echo
    echo "## Kernels that do not fit or spill (of: $(tail -n 1 "$OUT/kernels-compile.log"))"
    awk 'NR > 2 && ($NF != "yes" || $(NF-2) + 0 > 0)' "$OUT/kernels-compile.log" | head -n 20
    echo
    echo "## Benchmark (speed-ups are medians of per-repeat ratios, IQR in brackets)"
    grep '^|' "$OUT/benchmark.log"
    echo
    echo "## LINA vs NOVA (d48w1536, random weights)"
    grep -A 3 '^summary' "$OUT/generators.log"
} >> "$SUMMARY" 2>/dev/null
cat "$SUMMARY"
exit $failed
