"""Benchmark the FID pipeline: extraction overhead against torch-fidelity, and memory vs sample count.

    python benchmarks/bench_fid_pipeline.py --inception-weights PATH [--images 500] [--memory-counts 1000 10000]

1. The same images (random uint8, 64x64) through our pipeline (sharded, resumable, pool + logits +
   sFID features in one pass) and through ``torch_fidelity.calculate_metrics`` (Inception Score
   only: one pass of the same extractor, same batch size), timed side by side; goal: our overhead
   <= 5%.
2. Peak memory (RSS of a fresh process, VmHWM) of a streamed FID run of the toy generator at two
   sample counts; goal: flat (<= 1.2x) -- nothing holds all images.
Writes CSV + markdown under benchmarks/results/<device>/. Without --inception-weights a seeded
random-init Inception is used: the timing and memory do not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lina_bench.engine.provenance import cpu_model

from bench_output import results_dir, write_csv

MEMORY_CHILD = """
import json, sys
from pathlib import Path
from lina_bench.evaluators.fid import FidOptions, compute_fid
from lina_bench.evaluators.fid_reference import load_reference
from lina_bench.evaluators.fid_sources import GeneratorSource
from lina_bench.api.generator import build_generator
args = json.loads(sys.argv[1])
gen = build_generator("toy", {"num_classes": 10, "grid": [16, 16], "patch": 4})
result = compute_fid(GeneratorSource(gen, args["count"], 0), load_reference(args["ref"]), args["weights"],
                     Path(args["work"]), FidOptions(batch_size=args["batch"], kid=False, precision_recall=False),
                     progress=False)
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] * 1024
print(json.dumps({"fid": result.metrics[0].value, "peak_bytes": peak}))
"""


class ImageDataset(torch.utils.data.Dataset):
    """uint8 (3, H, W) images from an (N, H, W, 3) array, as torch-fidelity takes them."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.images[i]).permute(2, 0, 1).contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inception-weights", type=Path)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--memory-counts", type=int, nargs=2, default=[200, 1000])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lina-bench-fid-bench-"))
    weights = args.inception_weights
    if weights is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from inception_helpers import random_inception_weights
        weights = random_inception_weights(tmp / "random-inception.pth")

    import torch_fidelity

    from lina_bench.evaluators.fid import FidOptions, ShardedFeatures
    from lina_bench.evaluators.fid_reference import write_reference
    from lina_bench.evaluators.fid_sources import NpzSource
    from lina_bench.evaluators.inception import InceptionFeatures

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 64, 64, 3), dtype=np.uint8)
    np.savez(tmp / "images.npz", arr_0=images)
    source = NpzSource(tmp / "images.npz")
    extractor = InceptionFeatures(weights)
    options = FidOptions(batch_size=args.batch_size)
    rows = []
    for trial in range(3):  # alternate, three times, to spread machine noise over both
        start = time.perf_counter()
        ShardedFeatures(source, extractor, tmp / f"ours-{trial}", options, "bench").compute(progress=False)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        torch_fidelity.calculate_metrics(input1=ImageDataset(images), isc=True, feature_extractor="inception-v3-compat",
                                         feature_extractor_weights_path=str(weights), batch_size=args.batch_size,
                                         cache=False, samples_shuffle=False, verbose=False, cuda=False)
        theirs = time.perf_counter() - start
        rows.append({"measure": f"extraction s ({args.images} images, trial {trial})", "ours": ours,
                     "torch-fidelity": theirs, "ratio": ours / theirs})
    totals = [sum(r[k] for r in rows) for k in ("ours", "torch-fidelity")]
    rows.append({"measure": "extraction s, all trials", "ours": totals[0], "torch-fidelity": totals[1],
                 "ratio": totals[0] / totals[1]})

    mu, sigma = np.zeros(2048), np.eye(2048)
    write_reference(tmp / "ref.npz", mu, sigma, np.zeros(2023), np.eye(2023))
    peaks = []
    for count in args.memory_counts:
        spec = {"count": count, "ref": str(tmp / "ref.npz"), "weights": str(weights), "work": str(tmp / f"m{count}"),
                "batch": args.batch_size}
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, json.dumps(spec)], capture_output=True,
                             text=True, check=True)
        peaks.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"] / 2**20)
    rows.append({"measure": f"peak RSS MiB, {args.memory_counts[0]} vs {args.memory_counts[1]} streamed samples",
                 "ours": peaks[0], "torch-fidelity": peaks[1], "ratio": peaks[1] / peaks[0]})

    device = f"{cpu_model()} ({torch.get_num_threads()} threads)"
    out_dir = results_dir(device, out=args.out)
    write_csv(out_dir / "fid_pipeline.csv", rows)
    lines = [f"# FID pipeline benchmark on {device}", "",
             f"torch-fidelity {torch_fidelity.__version__}, batch size {args.batch_size}, 64x64 inputs. Extraction: "
             "ours vs `torch_fidelity.calculate_metrics` (ratio = ours / theirs; goal <= 1.05). Memory row: "
             "the 'ours' column is the smaller count, the next column the larger count (ratio goal <= 1.2).", "",
             "| measure | ours | torch-fidelity / larger run | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {r['measure']} | {r['ours']:.2f} | {r['torch-fidelity']:.2f} | {r['ratio']:.3f} |" for r in rows]
    (out_dir / "fid_pipeline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
