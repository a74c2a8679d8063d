"""``lina-bench check results``: stored results against a baseline file, direction-aware tolerances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import add_job, fill_store, toy_info

from lina_bench.engine.store import ResultStore

from cli_helpers import run_cli

FID_JOB = "fid-a.npz/toy[lina]"  # fid 2.5 (lower is better), inception_score 97.5 (higher is better)


def _baseline(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "out"
    fill_store(out).close()
    baseline = tmp_path / "baseline.json"
    code, text = run_cli("check", "results", "--out", str(out), "--write-baseline", str(baseline))
    assert code == 0 and "wrote 38 rows" in text, text
    return out, baseline


def _rerun(out: Path, job: str, metrics: list, evaluator: str = "fid", protocol: dict | None = None) -> None:
    """A newer run of ``job`` with other numbers."""
    store = ResultStore.in_dir(out)
    variant = job.split("[")[1].rstrip("]")
    protocol = protocol or {"evaluator": {"name": "fid", "reference": "a.npz"}, "generator": toy_info(variant)}
    add_job(store, job, variant, evaluator, metrics, protocol, run="r2", finished="2026-11-30T10:00:00+00:00")
    store.close()


def _check(out: Path, baseline: Path, *extra: str) -> tuple[int, str]:
    return run_cli("check", "results", "--out", str(out), "--baseline", str(baseline), *extra)


def test_unchanged_results_pass_and_the_baseline_names_protocols(tmp_path: Path):
    out, baseline = _baseline(tmp_path)
    data = json.loads(baseline.read_text())
    row = next(r for r in data["rows"] if r["job"] == FID_JOB and r["metric"] == "fid")
    assert row["value"] == 2.5 and row["higher_is_better"] is False
    assert row["protocol"]["evaluator"] == {"name": "fid", "reference": "a.npz"}
    assert data["tolerances"]["fid"] == 0.01 and data["tolerances"]["gmacs_per_image"] == 0.0
    assert data["tolerances"]["params"] == 0.0
    assert all(r["metric"] != "latency_ms" for r in data["rows"])  # timings left out by default
    samples = next(r for r in data["rows"] if r["job"] == "fid-a.npz/official")
    assert "path" not in samples["protocol"]["samples"]  # where a file lies is not protocol
    code, text = _check(out, baseline)
    assert code == 0 and "38 of 38 baseline rows passed, 0 failed (0 moved)" in text, text


@pytest.mark.parametrize(("fid", "inception", "code"), [
    (2.5 * 1.02, 97.5, 1),     # FID rose 2% > 1%: fail
    (2.5 * 1.005, 97.5, 0),    # FID rose 0.5%: within tolerance
    (2.0, 99.0, 0),            # both moved the good way: pass
    (2.5, 97.5 * 0.98, 1),     # IS fell 2%: fail
])
def test_direction_aware_tolerance(tmp_path: Path, fid: float, inception: float, code: int):
    out, baseline = _baseline(tmp_path)
    _rerun(out, FID_JOB, [("fid", fid, "1", False), ("inception_score", inception, "1", True)])
    result, text = _check(out, baseline, "--diff", str(tmp_path / "diff.md"))
    assert result == code, text
    moved = [line for line in text.splitlines() if line.startswith(f"| `{FID_JOB}`")]
    assert len(moved) == (fid != 2.5) + (inception != 97.5)
    assert ("**FAIL**" in text) == (code == 1)
    assert (tmp_path / "diff.md").read_text().splitlines()[2:] == [line for line in text.splitlines()
                                                                   if line.startswith("| `")]


def test_the_diff_table(tmp_path: Path):
    out, baseline = _baseline(tmp_path)
    _rerun(out, FID_JOB, [("fid", 3.0, "1", False), ("inception_score", 98.0, "1", True)])
    code, text = _check(out, baseline)
    assert code == 1
    lines = text.splitlines()
    assert lines[0] == "| job | metric | baseline | now | change | tolerance | verdict |"
    assert lines[2] == f"| `{FID_JOB}` | fid (lower is better) | 2.5 | 3 | +20% | 1% | **FAIL** |"  # failures first
    assert lines[3] == f"| `{FID_JOB}` | inception_score (higher is better) | 97.5 | 98 | +0.5128% | 1% | ok |"
    assert lines[-1] == "37 of 38 baseline rows passed, 1 failed (2 moved)"


def test_counts_are_exact_and_tolerances_are_set_per_metric(tmp_path: Path):
    out, baseline = _baseline(tmp_path)
    job = "model-flops/toy[lina]"
    protocol = {"evaluator": {"name": "model-flops", "counter": "fvcore"}, "generator": toy_info("lina")}
    _rerun(out, job, [("gmacs_per_image", 6.0 * (1 - 1e-9), "GMACs", False), ("params", 2.5e6, "params", None)],
           "model-flops", protocol)
    code, text = _check(out, baseline)
    assert code == 1 and "| gmacs_per_image (lower is better) | 6 | 6 | -1e-07% | 0% | **FAIL** |" in text, text
    data = json.loads(baseline.read_text())
    data["tolerances"]["gmacs_*"] = data["tolerances"].pop("gmacs_per_image") + 1e-6  # a pattern works too
    baseline.write_text(json.dumps(data))
    assert _check(out, baseline)[0] == 0
    data["rows"][0]["tolerance"] = 0.5  # a row's own tolerance wins
    _rerun(out, FID_JOB, [("fid", 3.0, "1", False), ("inception_score", 97.5, "1", True)])
    assert _check(out, baseline)[0] == 1
    data["tolerances"]["fid"] = 0.25  # FID may rise by up to 25%
    baseline.write_text(json.dumps(data))
    assert _check(out, baseline)[0] == 0


def test_missing_results_and_changed_protocols_fail(tmp_path: Path):
    out, baseline = _baseline(tmp_path)
    data = json.loads(baseline.read_text())
    data["rows"].append({**data["rows"][0], "job": "fid-a.npz/toy[lasad]"})
    baseline.write_text(json.dumps(data))
    code, text = _check(out, baseline)
    assert code == 1 and "| `fid-a.npz/toy[lasad]` |" in text and "no current result" in text
    _rerun(out, FID_JOB, [("fid", 2.5, "1", False), ("inception_score", 97.5, "1", True)],
           protocol={"evaluator": {"name": "fid", "reference": "a.npz"}, "generator": toy_info("lina", "text")})
    code, text = _check(out, baseline)
    assert code == 1 and "protocol changed: generator" in text


def test_bad_baselines_exit_2(tmp_path: Path):
    out, baseline = _baseline(tmp_path)
    good = json.loads(baseline.read_text())
    cases = {"not json {": "cannot read baseline",
             json.dumps({"format": "lina-bench-flops-baseline", "rows": []}): "is not a lina-bench results baseline",
             json.dumps({**good, "rows": [{**good["rows"][0], "value": "2.5"}]}): "row 0: field 'value'",
             json.dumps({**good, "rows": [good["rows"][0], {"job": "x"}]}): "row 1: field 'evaluator'",
             json.dumps({**good, "tolerances": {"fid": -1}}): "'tolerances' must map"}
    for text, message in cases.items():
        baseline.write_text(text)
        code, output = _check(out, baseline)
        assert code == 2 and message in output, (text, output)
    assert _check(out, tmp_path / "none.json")[0] == 2
    code, output = run_cli("check", "results", "--out", str(out))
    assert code == 2 and "exactly one of" in output


def test_timings_only_when_asked(tmp_path: Path):
    out, baseline = _baseline(tmp_path)
    code, text = run_cli("check", "results", "--out", str(out), "--write-baseline", str(baseline),
                         "--include-timings")
    assert code == 0 and "wrote 40 rows" in text
    assert {r["metric"] for r in json.loads(baseline.read_text())["rows"]} >= {"latency_ms"}


def test_ignored_protocol_fields(tmp_path: Path):
    out, baseline = _baseline(tmp_path)
    protocol = {"evaluator": {"name": "fid", "reference": "a.npz", "reference_sha256": "other"},
                "generator": toy_info("lina")}
    _rerun(out, FID_JOB, [("fid", 2.5, "1", False), ("inception_score", 97.5, "1", True)], protocol=protocol)
    code, text = _check(out, baseline)
    assert code == 1 and "protocol changed: evaluator" in text
    data = json.loads(baseline.read_text())
    assert data["ignore_protocol"] == []
    data["ignore_protocol"] = ["reference_sha256"]
    baseline.write_text(json.dumps(data))
    assert _check(out, baseline)[0] == 0
