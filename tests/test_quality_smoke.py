"""The built-in quality-smoke suite: its assets (deterministic, built once, atomically), the ``{assets}``
placeholder of built-in suites, and evaluator entries restricted to some targets (``only``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lina_bench.engine import suite as suite_module
from lina_bench.engine.suite import SuiteError, builtin_suites, load_suite, parse_suite, suite_assets
from lina_bench.suites import quality_smoke

from cli_helpers import run_cli

ASSET_FILES = ["inception-random.pth", "prompts.txt", "reference.npz", "tiny-clip/open_clip_config.json",
               "tiny-clip/open_clip_model.safetensors"]
SMALL_REFERENCE = 8


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    """An output folder holding the quality-smoke assets, built once for the module, with 8 reference
    images instead of 128 (the same path, fewer Inception passes)."""
    out = tmp_path_factory.mktemp("quality-smoke")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quality_smoke, "REFERENCE_IMAGES", SMALL_REFERENCE)
        suite_assets("quality-smoke", out)
    return out


def digests(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (the reference npz too: its zip members
    carry a fixed time stamp, so the same arrays give the same bytes)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(p for p in folder.rglob("*") if p.is_file())}


def test_suite_loads_with_its_assets_substituted(out_dir: Path):
    suite = load_suite("quality-smoke", out_dir)
    assets = out_dir / "assets" / "quality-smoke"
    assert [job.name for job in suite.jobs()] == ["fid/toy-c2i[softmax]", "fid/toy-c2i[lina]", "clip-score/toy-t2i"]
    fid, clip = suite.evaluators
    assert (fid.options["ref"], fid.options["inception_weights"]) == (str(assets / "reference.npz"),
                                                                       str(assets / "inception-random.pth"))
    assert (clip.options["prompts"], clip.options["clip_model"]) == (str(assets / "prompts.txt"),
                                                                      str(assets / "tiny-clip"))
    assert sorted(digests(assets)) == ASSET_FILES
    assert not [p for p in assets.rglob("*") if p.name.startswith(".")]  # no temporary file left behind


def test_assets_are_reused(out_dir: Path):
    assets = out_dir / "assets" / "quality-smoke"
    before = {name: ((assets / name).stat().st_ino, (assets / name).stat().st_mtime_ns) for name in ASSET_FILES}
    load_suite("quality-smoke", out_dir)
    assert {name: ((assets / name).stat().st_ino, (assets / name).stat().st_mtime_ns) for name in ASSET_FILES} == before


def test_assets_are_deterministic(out_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(quality_smoke, "REFERENCE_IMAGES", SMALL_REFERENCE)
    quality_smoke.build_assets(tmp_path)
    assert digests(tmp_path) == digests(out_dir / "assets" / "quality-smoke")


def test_pattern_images_are_structured():
    images = quality_smoke.pattern_images(16)
    assert images.shape == (16, 32, 32, 3) and images.dtype.name == "uint8"
    assert (quality_smoke.pattern_images(16) == images).all()
    # neighbouring pixels mostly agree (gradients and flat shapes), unlike noise
    assert (abs(images[:, 1:].astype(int) - images[:, :-1]) <= 8).mean() > 0.9


def test_listed_with_its_description():
    code, output = run_cli("list", "suites")
    assert code == 0
    line = next(line for line in output.splitlines() if line.strip().startswith("quality-smoke"))
    assert "FID" in line and "CLIP score" in line


def test_placeholder_in_a_suite_file_is_an_error(write_suite):
    path = write_suite("""\
generators: [toy]
evaluators:
  - name: clip-score
    options: {prompts: "{assets}/prompts.txt"}
""")
    with pytest.raises(SuiteError, match=r"suite.yaml:4:\d+: evaluators.0.options.prompts: \{assets\} is only for "
                                         r"built-in suites"):
        load_suite(str(path))


def test_unknown_placeholder_is_an_error(tmp_path: Path):
    text = 'generators: [toy]\nevaluators:\n  - {name: clip-score, options: {prompts: "{asset}/prompts.txt"}}\n'
    with pytest.raises(SuiteError, match=r"unknown placeholder \{asset\} \(known: \{assets\}\)"):
        parse_suite(text, "<built-in suite x>", assets=tmp_path)


def test_builtin_suite_without_builder_is_an_error(tmp_path: Path, monkeypatch):
    text = builtin_suites()["quality-smoke"]
    monkeypatch.setattr(suite_module, "builtin_suites", lambda: {"no-builder": text})
    with pytest.raises(SuiteError, match=r"'no-builder' uses \{assets\} but has no asset builder: "
                                         r"lina_bench.suites.no_builder must define build_assets\(folder\)"):
        load_suite("no-builder", tmp_path)
    assert not (tmp_path / "assets").exists()


def test_only_restricts_an_evaluator_to_some_entries(write_suite):
    text = """\
attention: [softmax, {name: lina, label: mine}]
evaluators:
  - {name: module-profile, only: [mine], options: {dim: 16, num_heads: 2, grid: [2, 2]}}
"""
    assert [job.name for job in load_suite(str(write_suite(text))).jobs()] == ["module-profile/mine"]
    with pytest.raises(SuiteError, match=r"evaluators.0.only: unknown entry label 'lin' \(valid: mine, softmax\)"):
        load_suite(str(write_suite(text.replace("only: [mine]", "only: [lin]"))))
    with pytest.raises(SuiteError, match=r"evaluators.0.only: must be a list of entry labels"):
        load_suite(str(write_suite(text.replace("only: [mine]", "only: mine"))))


def test_smaller_run_of_the_suite_with_its_assets(out_dir: Path, write_suite):
    """The suite's jobs on its (smaller) assets with fewer samples; the full suite runs in the baseline check."""
    text = builtin_suites()["quality-smoke"].replace("{assets}", str(out_dir / "assets" / "quality-smoke"))
    text = text.replace("num_samples: 128", "num_samples: 8").replace("images_per_prompt: 2", "images_per_prompt: 1")
    code, output = run_cli("run", str(write_suite(text)), "--out", str(out_dir), "--no-progress")
    assert code == 0, output
    code, output = run_cli("results", "--out", str(out_dir), "--format", "json")
    rows = {(row["job"], row["metric"]): row["value"] for row in json.loads(output)}
    assert {"fid", "sfid", "inception_score", "kid", "precision", "recall"} <= {
        metric for job, metric in rows if job == "fid/toy-c2i[lina]"}
    assert rows["clip-score/toy-t2i", "clip_score_images"] == len(quality_smoke.PROMPTS)
    assert all(value == value for value in rows.values())  # no NaN


def test_quality_smoke_matches_the_committed_baseline(tmp_path: Path):
    """The whole suite (128 reference images, 128 samples per model) checked against
    baselines/quality-smoke.json as CI does: numbers move only when code changes."""
    code, text = run_cli("run", "quality-smoke", "--out", str(tmp_path), "--no-progress")
    assert code == 0, text
    baseline = Path(__file__).parents[1] / "baselines" / "quality-smoke.json"
    code, text = run_cli("check", "results", "--out", str(tmp_path), "--baseline", str(baseline))
    assert code == 0 and "19 of 19 baseline rows passed" in text, text
