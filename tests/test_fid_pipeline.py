"""The FID pipeline end to end with a random-init Inception saved to a weights file (the real
loading path): CLI, generator sampling, batch-size and process-count invariance, resume after
kill -9, reference handling and bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from inception_helpers import random_inception_weights

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.files import file_sha256
from lina_bench.api.generator import NonFiniteImages, build_generator, sample_seed
from lina_bench.engine.store import ResultStore
from lina_bench.evaluators import fid as fid_module
from lina_bench.evaluators.fid import FidOptions, compute_fid
from lina_bench.evaluators.fid_reference import load_reference
from lina_bench.evaluators.fid_sources import GeneratorSource, NpzSource, open_samples
from lina_bench.evaluators.inception import FEATURE_DIMS, InceptionFeatures

from cli_helpers import assert_same_rows, kill_9_after, run_cli, stored_rows


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fid")
    rng = np.random.default_rng(0)
    np.savez(root / "ref_images.npz", arr_0=rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8))
    np.savez(root / "samples.npz", arr_0=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8))
    weights = random_inception_weights(root / "weights.pth")
    code, text = run_cli("fid-ref", "build", str(root / "ref_images.npz"), "--inception-weights", str(weights),
                         "--output", str(root / "ref.npz"), "--with-images", "--batch-size", "8",
                         "--work", str(root / "work"))
    assert code == 0, text
    return {"root": root, "weights": weights, "ref": root / "ref.npz", "samples": root / "samples.npz"}


def test_extractor_gives_the_three_feature_kinds(assets):
    net = InceptionFeatures(assets["weights"])
    out = net(torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (3, d) for k, d in FEATURE_DIMS.items()}
    hooked = net.net.Mixed_6d.branch1x1  # TF mixed_6/conv = Mixed_6d.branch1x1 (conv, BN, ReLU)
    captured = {}
    handle = hooked.register_forward_hook(lambda m, i, o: captured.setdefault("map", o))
    again = net(torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8))
    handle.remove()
    expected = captured["map"][:, :7].permute(0, 2, 3, 1).reshape(2, -1)  # NHWC flatten, as ADM
    assert torch.equal(again["spatial"], expected.float())


def test_reference_round_trip_and_refusals(assets, tmp_path):
    ref = load_reference(assets["ref"])
    assert ref.kind == "adm" and ref.images.shape == (24, 32, 32, 3) and len(ref.sha256) == 64
    np.savez(tmp_path / "mar.npz", mu=ref.mu, sigma=ref.sigma)
    assert load_reference(tmp_path / "mar.npz").kind == "mar"
    np.savez(tmp_path / "small.npz", mu=np.zeros(64), sigma=np.eye(64))
    with pytest.raises(LinaBenchError, match=r"'mu' has shape \(64,\), but the Inception extractor gives"):
        load_reference(tmp_path / "small.npz")
    np.savez(tmp_path / "nokeys.npz", arr_0=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(LinaBenchError, match=r"lacks \['mu', 'sigma'\]"):
        load_reference(tmp_path / "nokeys.npz")
    with pytest.raises(LinaBenchError, match="reference statistics not found"):
        load_reference(tmp_path / "missing.npz")


def test_cli_on_samples_stores_results_with_protocol(assets, tmp_path):
    out = tmp_path / "out"
    code, text = run_cli("fid", "--samples", str(assets["samples"]), "--ref", str(assets["ref"]),
                         "--inception-weights", str(assets["weights"]), "--batch-size", "8", "--shard-size", "8",
                         "--out", str(out), "--json")
    assert code == 0, text
    data = json.loads(text[text.index("{"):])
    assert {"fid", "sfid", "inception_score", "kid", "precision", "recall"} <= set(data["metrics"])
    assert all(np.isfinite(v) for v in data["metrics"].values())
    protocol = data["protocol"]["evaluator"]
    assert protocol["reference"] == "ref.npz" and protocol["is_convention"] == "adm"
    assert protocol["num_samples"] == 20 and protocol["reference_sha256"] == load_reference(assets["ref"]).sha256
    code, text = run_cli("results", "--out", str(out), "--format", "json")
    rows = json.loads(text)
    assert {r["metric"] for r in rows} >= {"fid", "sfid"} and rows[0]["suite"] == "cli:fid"


def test_generator_fid_is_batch_size_independent(assets, tmp_path):
    ref = load_reference(assets["ref"])
    gen = build_generator("toy", {"attention": "lina"})
    results = []
    for batch in (4, 10):
        source = GeneratorSource(gen, 20, seed=5)
        result = compute_fid(source, ref, assets["weights"], tmp_path / f"b{batch}",
                             FidOptions(batch_size=batch, shard_size=10, kid=False), progress=False)
        results.append({m.name: m.value for m in result.metrics})
    assert source.label(0) == 0 and source.label(19) == 9  # 2 per class, label order
    assert results[0]["fid"] == pytest.approx(results[1]["fid"], rel=1e-6)
    assert results[0]["precision"] == results[1]["precision"]


def _fid_cli(assets, out: Path, *extra: str) -> list[str]:
    return ["fid", "--samples", str(assets["samples"]), "--ref", str(assets["ref"]), "--inception-weights",
            str(assets["weights"]), "--batch-size", "4", "--shard-size", "4", "--no-kid", "--out", str(out), "--json",
            *extra]


def _shards(out: Path) -> dict[str, dict[str, np.ndarray]]:
    arrays = {}
    for path in sorted((out / "work" / "fid-features").glob("*/shard_*.npz")):
        with np.load(path) as data:
            arrays[f"{path.parent.name}/{path.name}"] = {k: data[k] for k in data.files}
    return arrays


def test_two_gloo_processes_equal_one(assets, tmp_path):
    """Same thread count per process in both runs (float results depend on it, not on the ranks)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "lina_bench.cli", *_fid_cli(assets, tmp_path / "one")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "lina_bench.cli", *_fid_cli(assets, tmp_path / "two")], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fid_one = json.loads(one.stdout[one.stdout.index("{"):])["metrics"]
    fid_two = json.loads(proc.stdout[proc.stdout.index("{"):])["metrics"]
    assert fid_one == fid_two
    a, b = _shards(tmp_path / "one"), _shards(tmp_path / "two")
    assert a.keys() == b.keys() and len(a) == 5 + 6  # 20 samples and 24 reference images, shards of 4
    for key in a:
        assert all(np.array_equal(a[key][k], b[key][k]) for k in a[key])


def test_resume_after_kill_9_gives_identical_numbers(assets, tmp_path):
    out = tmp_path / "killed"
    kill_9_after("lina_bench.evaluators.fid:_write_atomic", 2, *_fid_cli(assets, out))
    finished = {p: p.stat().st_mtime_ns for p in (out / "work" / "fid-features").glob("*/shard_*.npz")}
    assert len(finished) == 2  # of 5 sample shards: killed right after the second
    resumed = run_cli(*_fid_cli(assets, out))
    fresh = run_cli(*_fid_cli(assets, tmp_path / "fresh"))
    assert resumed[0] == fresh[0] == 0
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # reused, not rewritten
    metrics = [json.loads(t[t.index("{"):])["metrics"] for _, t in (resumed, fresh)]
    assert metrics[0] == metrics[1]


def test_finished_shards_are_reused_and_scored_in_npz_order(assets, tmp_path, monkeypatch):
    """A second run over the same samples draws nothing and rewrites no shard; the Inception Score
    sees the logits in LINA's npz order (checked against each image's own logits)."""
    ref = load_reference(assets["ref"])
    gen = build_generator("toy", {"steps": 1})
    drawn, scored = [], []
    real = gen.sample
    gen.sample = lambda conditions, seeds: drawn.extend(seeds) or real(conditions, seeds)
    real_is = fid_module.inception_score
    monkeypatch.setattr(fid_module, "inception_score", lambda logits, c: scored.append(logits) or real_is(logits, c))
    options = FidOptions(batch_size=5, shard_size=5, kid=False, precision_recall=False)
    first = compute_fid(GeneratorSource(gen, 20, seed=0), ref, assets["weights"], tmp_path, options, progress=False)
    np.random.seed(1337)
    order = np.random.permutation(20)
    net = InceptionFeatures(assets["weights"])
    expected = torch.cat([net(real([int(i) // 2], [sample_seed(0, int(i))]))["logits"] for i in order])
    assert torch.allclose(scored[0], expected, rtol=1e-4, atol=1e-4)
    shards = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.glob("fid-features/*/shard_*.npz")}
    assert len(drawn) == 20 and len(shards) == 4
    drawn.clear()
    again = compute_fid(GeneratorSource(gen, 20, seed=0), ref, assets["weights"], tmp_path, options, progress=False)
    assert drawn == []
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shards} == shards
    assert [m.value for m in again.metrics] == [m.value for m in first.metrics]


def test_corrupt_shard_is_recomputed(assets, tmp_path):
    out = tmp_path / "corrupt"
    first = run_cli(*_fid_cli(assets, out))
    shard = sorted((out / "work" / "fid-features").glob("*/shard_000001.npz"))[0]
    shard.write_bytes(shard.read_bytes()[:-10])  # checksum no longer matches
    second = run_cli(*_fid_cli(assets, out))
    assert first[1][first[1].index("{"):].split('"run_id"')[0] == second[1][second[1].index("{"):].split('"run_id"')[0]


def test_bad_inputs(assets, tmp_path):
    code, text = run_cli("fid", "--samples", str(assets["samples"]), "--ref", str(assets["ref"]),
                         "--inception-weights", str(tmp_path / "nope.pth"))
    assert code == 2 and "weights-inception-2015-12-05-6726825d.pth" in text and "torch-fidelity" in text
    np.savez(tmp_path / "float.npz", arr_0=np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(LinaBenchError, match=r"'arr_0' must be uint8 \(N, H, W, 3\)"):
        NpzSource(tmp_path / "float.npz")
    (tmp_path / "geneval" / "00000").mkdir(parents=True)
    with pytest.raises(LinaBenchError, match="is a geneval-folder; FID needs an image folder or an .npz"):
        open_samples(tmp_path / "geneval")
    np.savez(tmp_path / "gray.npz", arr_0=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(LinaBenchError, match="must be uint8"):
        NpzSource(tmp_path / "gray.npz")
    code, text = run_cli("fid", "--ref", str(assets["ref"]), "--inception-weights", str(assets["weights"]))
    assert code == 2 and "exactly one of --generator" in text
    code, text = run_cli("fid", "--generator", "toy", "--num-samples", "15", "--ref", str(assets["ref"]),
                         "--inception-weights", str(assets["weights"]))
    assert code == 2 and "multiple of the number of classes" in text


def test_fid_command_and_suite_store_the_same_rows(assets, tmp_path, write_suite):
    """`fid --samples NPZ` and a suite's samples entry with the fid evaluator: the same rows, and a
    protocol that names the Inception weights by sha256 and the samples by path and content."""
    cmd = tmp_path / "cmd"
    assert run_cli(*_fid_cli(assets, cmd)[:-1])[0] == 0  # without --json
    path = write_suite(f"""\
samples: [{{name: elsewhere, path: {assets['samples']}}}]
evaluators:
  - name: fid
    options: {{ref: {assets['ref']}, inception_weights: {assets['weights']}, batch_size: 4, shard_size: 4, kid: false}}
""")
    code, text = run_cli("run", str(path), "--out", str(tmp_path / "suite"), "--no-progress")
    assert code == 0, text
    assert_same_rows(cmd, tmp_path / "suite")
    protocol = stored_rows(cmd)["fid"]["protocol"]
    assert protocol["evaluator"]["inception_weights_sha256"] == file_sha256(assets["weights"])
    assert protocol["samples"]["sha256"] == file_sha256(assets["samples"]) and protocol["samples"]["format"] == "npz"


def test_other_inception_weights_give_another_protocol(assets, tmp_path):
    other = random_inception_weights(tmp_path / "other.pth", seed=1)
    for name, weights in (("a", assets["weights"]), ("b", other)):
        args = _fid_cli(assets, tmp_path / name)
        args[args.index("--inception-weights") + 1] = str(weights)
        assert run_cli(*args)[0] == 0
    a, b = stored_rows(tmp_path / "a")["fid"]["protocol"], stored_rows(tmp_path / "b")["fid"]["protocol"]
    assert a != b and a["evaluator"]["inception_weights_sha256"] != b["evaluator"]["inception_weights_sha256"]


def test_nan_images_fail_the_measurement_with_exit_1(assets, tmp_path, monkeypatch):
    from lina_bench.api.generator import to_uint8
    from lina_bench.models import toy

    nan_images = lambda self, c, s: to_uint8(torch.full((len(c), 3, 8, 8), float("nan")))  # noqa: E731
    monkeypatch.setattr(toy.ToyGenerator, "sample", nan_images)
    code, text = run_cli("fid", "--generator", "toy", "--num-samples", "10", "--ref", str(assets["ref"]),
                         "--inception-weights", str(assets["weights"]), "--batch-size", "5", "--out", str(tmp_path))
    assert code == 1 and "960 non-finite values in 5 of 5 images" in text
    jobs = ResultStore.in_dir(tmp_path).jobs()
    assert [j["status"] for j in jobs] == ["failed"] and "non-finite" in jobs[0]["error"]


def test_nan_images_are_counted_not_clipped():
    gen = build_generator("toy")
    with torch.no_grad():
        gen.decoder.bias[0] = float("nan")  # one channel of one pixel of every patch
    source = GeneratorSource(gen, 10, seed=0)
    with pytest.raises(NonFiniteImages, match=r"produced 256 non-finite values in 4 of 4 images"):
        source.images(range(4))


def test_fid_evaluator_in_a_suite(assets, write_suite, tmp_path):
    path = write_suite(f"""\
generators: [{{name: toy, options: {{steps: 1}}}}]
evaluators:
  - name: fid
    options: {{ref: {assets['ref']}, inception_weights: {assets['weights']}, num_samples: 10, batch_size: 5,
               shard_size: 5, kid: false}}
""")
    code, text = run_cli("run", str(path), "--out", str(tmp_path / "out"), "--no-progress")
    assert code == 0, text
    code, text = run_cli("results", "--out", str(tmp_path / "out"), "--format", "json")
    rows = {row["metric"]: row["value"] for row in json.loads(text)}
    direct = compute_fid(GeneratorSource(build_generator("toy", {"steps": 1}), 10, seed=0),
                         load_reference(assets["ref"]), assets["weights"], tmp_path / "direct",
                         FidOptions(batch_size=5, shard_size=5, kid=False), progress=False)
    assert rows == {m.name: m.value for m in direct.metrics}
    assert {"fid", "sfid", "inception_score", "precision", "recall"} <= set(rows)
    bad = write_suite(f"generators: [toy]\nevaluators:\n  - {{name: fid, options: {{ref: {assets['ref']}, "
                      f"inception_weights: /no/weights.pth}}}}\n", name="bad.yaml")
    code, text = run_cli("run", str(bad), "--out", str(tmp_path / "out2"))
    assert code == 2 and "Inception weights not found: /no/weights.pth" in text


def test_generator_samples_saved_as_png_and_adm_npz(assets, tmp_path):
    """PNGs are named by sample index; the npz holds them in LINA's order (computed here with the
    official numpy calls), labels in arr_1; scoring the saved npz gives the generator run's numbers."""
    out = tmp_path / "out"
    args = ["--ref", str(assets["ref"]), "--inception-weights", str(assets["weights"]), "--batch-size", "5",
            "--no-pr", "--out", str(out), "--json"]
    code, text = run_cli("fid", "--generator", "toy", "--num-samples", "10", "--seed", "3", "--save-png",
                         str(tmp_path / "png"), "--save-npz", str(tmp_path / "samples.npz"), *args)
    assert code == 0, text
    generated = json.loads(text[text.index("{"):])
    assert generated["protocol"]["evaluator"]["seed"] == 3
    assert "seed(1337)" in generated["protocol"]["evaluator"]["sample_order"]
    gen = build_generator("toy")  # 10 classes, 10 samples: sample i has label i and seed sample_seed(3, i)
    expected = gen.sample(list(range(10)), [sample_seed(3, i) for i in range(10)]).permute(0, 2, 3, 1).numpy()
    np.random.seed(1337)
    order = np.random.permutation(10)
    with np.load(tmp_path / "samples.npz") as data:
        arr, labels = data["arr_0"], data["arr_1"]
    assert arr.dtype == np.uint8 and np.array_equal(arr, expected[order])
    assert labels.tolist() == order.tolist()
    from PIL import Image
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(10)]
    assert np.array_equal(np.asarray(Image.open(pngs[7])), expected[7])
    code, text = run_cli("fid", "--samples", str(tmp_path / "samples.npz"), *args)
    assert code == 0, text
    scored = json.loads(text[text.index("{"):])["metrics"]
    assert scored.keys() == generated["metrics"].keys()
    for name, value in generated["metrics"].items():  # same images in the same order; batches differ
        assert scored[name] == pytest.approx(value, rel=1e-5, abs=1e-9), name
