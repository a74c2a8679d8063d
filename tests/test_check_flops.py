"""`lina-bench check flops`: the committed baseline passes; drift fails with a per-row diff."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run_cli

BASELINE = Path(__file__).resolve().parent.parent / "baselines" / "flops-efficiency.json"


def test_committed_baseline_passes():
    code, text = run_cli("check", "flops", "--baseline", str(BASELINE))
    assert code == 0, text
    assert "32 passed, 0 failed" in text


def edited(tmp_path: Path, edit) -> Path:
    data = json.loads(BASELINE.read_text())
    data["rows"] = [r for r in data["rows"] if r["name"].startswith("flops-c2i-256px-w768/")]
    edit(data["rows"])
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data))
    return path


def test_changed_count_fails_with_a_diff(tmp_path):
    def shrink_lina(rows):
        row = next(r for r in rows if r["variant"] == "lina")
        row["macs"] = round(row["macs"] / 1.01)
    code, text = run_cli("check", "flops", "--baseline", str(edited(tmp_path, shrink_lina)))
    assert code == 1
    assert "flops-c2i-256px-w768/lina" in text and "+1.0000%" in text and "7 passed, 1 failed" in text


def test_tolerance_allows_drift_per_row(tmp_path):
    def shrink_with_tolerance(rows):
        row = next(r for r in rows if r["variant"] == "lina")
        row["macs"], row["tolerance"] = round(row["macs"] / 1.01), 0.02
    code, text = run_cli("check", "flops", "--baseline", str(edited(tmp_path, shrink_with_tolerance)))
    assert code == 0 and "8 passed, 0 failed" in text


def test_row_that_cannot_be_counted_fails(tmp_path):
    def rename(rows):
        rows[0]["variant"] = "gone-variant"
    code, text = run_cli("check", "flops", "--baseline", str(edited(tmp_path, rename)))
    assert code == 1 and "unknown attention variant 'gone-variant'" in text


def test_write_baseline_roundtrip(tmp_path, write_suite):
    suite = write_suite("attention: [softmax, lasad]\nevaluators:\n"
                        "  - {name: flops, options: {dim: 32, num_heads: 2, grid: [4, 4], prefix: 2}}\n")
    path = tmp_path / "b.json"
    code, text = run_cli("check", "flops", "--write-baseline", str(path), "--suite", str(suite))
    assert code == 0 and "wrote 2 rows" in text
    rows = json.loads(path.read_text())["rows"]
    assert [r["name"] for r in rows] == ["flops/softmax", "flops/lasad"]
    assert run_cli("check", "flops", "--baseline", str(path))[0] == 0


def test_bad_usage_exits_2(tmp_path):
    assert run_cli("check", "flops")[0] == 2
    assert run_cli("check", "flops", "--baseline", "a.json", "--write-baseline", "b.json")[0] == 2
    code, text = run_cli("check", "flops", "--baseline", str(tmp_path / "missing.json"))
    assert code == 2 and "baseline file not found" in text
    (tmp_path / "junk.json").write_text('{"rows": 3}')
    code, text = run_cli("check", "flops", "--baseline", str(tmp_path / "junk.json"))
    assert code == 2 and "not a lina-bench FLOPs baseline" in text
    code, text = run_cli("check", "flops", "--write-baseline", str(tmp_path / "x.json"), "--suite", "smoke")
    assert code == 2 and "no 'flops' evaluator jobs" in text
