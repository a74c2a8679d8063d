"""The efficiency report's decode profile: table, crossover and plot from a store filled with known rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import add_job

from lina_bench.engine.runner import results_frame
from lina_bench.engine.store import ResultStore
from lina_bench.reports.efficiency import EfficiencyReport

POSITIONS = (1, 64, 128, 255)
SLOT = 2**16  # bytes of one KV slot of all layers: the softmax cache holds (p + 1) slots, (p + 1) / 16 MiB
STATE = 4 * 2**20  # the lasad state: 4 MiB at every position; the caches cross at (p + 1) / 16 = 4, p = 63


def cache_bytes(variant: str, p: int) -> float:
    return float(SLOT * (p + 1) if variant == "softmax" else STATE)


def ms_per_token(variant: str, p: int) -> float:
    return 1.0 + p / 100 if variant == "softmax" else 0.9


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("store")
    store = ResultStore.in_dir(out)
    store.start_run("r1", "s", "2026-11-29T10:00:00")
    for variant in ("softmax", "lasad"):
        metrics = [(f"{name}@{p}", fn(variant, p), unit, False) for p in POSITIONS
                   for name, fn, unit in (("cache_bytes", cache_bytes, "bytes"), ("ms_per_token", ms_per_token, "ms"))]
        add_job(store, f"decode-profile/llamagen[{variant}]", variant, "decode-profile", metrics,
                {"evaluator": {"name": "decode-profile", "positions": list(POSITIONS), "rows": 2}})
    add_job(store, "fid-a.npz/toy[lina]", "lina", "fid", [("fid", 3.0, "1", False)], {"evaluator": {"name": "fid"}})
    frame = results_frame(store, "s")
    store.close()
    report = EfficiencyReport()
    files = report.write(report.relevant(frame), out)
    return out, files


def test_decode_profile_plot_and_csv_are_written(report):
    out, files = report
    assert {out / "decode_profile.png", out / "decode_profile.csv", out / "summary.md"} <= set(files)
    png = (out / "decode_profile.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_decode_profile_table_values_and_crossover(report):
    out, _ = report
    summary = (out / "summary.md").read_text()
    assert "## Decoding memory and latency per token position" in summary
    header = next(line for line in summary.splitlines() if "llamagen[softmax] cache MiB" in line)
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns == ["position", "llamagen[softmax] cache MiB", "llamagen[lasad] cache MiB",
                       "llamagen[softmax] ms/token", "llamagen[lasad] ms/token"]
    rows = {int(cells[0]): [float(c) for c in cells[1:]]
            for line in summary.splitlines()
            if line.startswith("|") and (cells := [c.strip() for c in line.strip("|").split("|")])[0].isdigit()}
    assert sorted(rows) == list(POSITIONS)
    for p in POSITIONS:
        expected = [cache_bytes("softmax", p) / 2**20, STATE / 2**20, ms_per_token("softmax", p), 0.9]
        assert rows[p] == pytest.approx(expected, abs=6e-4)  # printed with 4 significant digits
    assert "- `llamagen[lasad]`: smaller than `llamagen[softmax]`'s cache from token 63" in summary
    assert "fid" not in summary.lower()  # rows the report does not declare are not read
