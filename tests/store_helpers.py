"""A results store filled with known rows, for the report and check tests."""

from __future__ import annotations

from pathlib import Path

from lina_bench.api.schema import Result, config_hash
from lina_bench.engine.store import JobRecord, ResultStore
from lina_bench.evaluators.geneval.scoring import TAGS

# (variant, FID vs a.npz, FID vs b.npz or None, GFLOPs per image, params)
MODELS = (("softmax", 3.0, 4.0, 10.0, 2.0e6), ("lina", 2.5, 4.5, 6.0, 2.5e6), ("linear", 5.0, None, 5.0, 2.5e6))


def toy_info(attention: str, conditioning: str = "class") -> dict:
    return {"family": "toy", "resolution": [32, 32], "conditioning": conditioning, "steps": 4, "num_classes": 10,
            "guidance": None, "attention": attention, "uint8_convention": "u8", "extra": {}}


def add_job(store: ResultStore, job: str, variant: str | None, evaluator: str, metrics: list, protocol: dict,
            config: dict | None = None, finished: str = "2026-11-29T10:00:00+00:00", run: str = "r1") -> None:
    """Store one ok job of run ``run`` with ``metrics`` [(name, value, unit, higher_is_better)]; the
    job key hashes ``config`` and the job name, so the same job stored again is a newer run of it."""
    config = config or {"generator": {"name": "toy", "options": {}}, "variant": variant, "evaluator": evaluator}
    generator = "toy" if config.get("generator") else None
    key = config_hash({**config, "job": job})
    provenance = {"versions": {"lina-bench": "0.1.0"}, "git_revision": "abc", "finished_at": finished}
    rows = [Result(run, "s", job, key, generator, variant, evaluator, name, value, unit, direction, protocol,
                   config, provenance) for name, value, unit, direction in metrics]
    store.record_job(JobRecord(run, key, job, "s", generator, variant, evaluator, "ok", None, config,
                               protocol, provenance), rows)


def fill_store(out: Path) -> ResultStore:
    """Known rows: three toy variants with FID against two references (one variant lacks the second),
    model FLOPs, GenEval of a text model, samples scored from a file, and two attention modules."""
    store = ResultStore.in_dir(out)
    store.start_run("r1", "s", "2026-11-29T10:00:00")
    for variant, fid_a, fid_b, gflops, params in MODELS:
        for reference, fid in (("a.npz", fid_a), ("b.npz", fid_b)):
            if fid is not None:
                add_job(store, f"fid-{reference}/toy[{variant}]", variant, "fid",
                     [("fid", fid, "1", False), ("inception_score", 100 - fid, "1", True)],
                     {"evaluator": {"name": "fid", "reference": reference}, "generator": toy_info(variant)})
        add_job(store, f"model-flops/toy[{variant}]", variant, "model-flops",
             [("gmacs_per_image", gflops, "GMACs", False), ("params", params, "params", None)],
             {"evaluator": {"name": "model-flops", "counter": "fvcore"}, "generator": toy_info(variant)})
        add_job(store, f"geneval/t2i[{variant}]", variant, "geneval",
             [(f"geneval_{tag}", 0.1 * i + (0.05 if variant == "lina" else 0.0), "1", True)
              for i, tag in enumerate(TAGS)] + [("geneval_overall", 0.3, "1", True)],
             {"evaluator": {"name": "geneval"}, "generator": toy_info(variant, "text")})
    add_job(store, "fid-a.npz/official", None, "fid", [("fid", 1.9, "1", False)],
         {"evaluator": {"name": "fid", "reference": "a.npz"},
          "samples": {"path": "/data/lina_50k.npz", "format": "npz", "sha256": "f" * 64}},
         config={"generator": None, "samples": {"name": "lina-official", "path": "/data/lina_50k.npz"}})
    for variant, ms in (("softmax", 2.0), ("lina", 1.0)):
        add_job(store, f"speed-320/{variant}", variant, "speed", [("latency_ms", ms, "ms", False)],
             {"evaluator": {"name": "speed", "tokens": 320}, "variant": {"name": variant, "options": {}}},
             config={"generator": None, "variant": {"name": variant, "options": {}}})
    return store
