"""Runner: results stored with the documented schema, resume, --force, failure isolation, interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lina_bench.api.schema import RESULT_FIELDS
from lina_bench.engine import runner
from lina_bench.engine.store import ResultStore
from lina_bench.engine.suite import parse_suite

from cli_helpers import kill_9_after, run_cli

SUITE = """\
name: tiny
attention: [softmax, linear, {name: lasad, label: broken, options: {decay: 3d}}]
evaluators:
  - name: module-profile
    options: {dim: 16, num_heads: 2, grid: [4, 4], prefix: 2, repeats: 1}
"""


def statuses(out: Path) -> dict[str, list[str]]:
    store = ResultStore.in_dir(out, create=False)
    jobs = {}
    for job in store.jobs():
        jobs.setdefault(job["job"], []).append(job["status"])
    return jobs


def test_failure_isolation_resume_and_force(write_suite, tmp_path):
    path, out = write_suite(SUITE), tmp_path / "out"
    code, output = run_cli("run", str(path), "--out", str(out), "--no-progress")
    assert code == 1, output  # one job failed
    assert "FAILED module-profile/broken" in output and "unknown lasad decay '3d'" in output
    assert statuses(out) == {"module-profile/softmax": ["ok"], "module-profile/linear": ["ok"],
                             "module-profile/broken": ["failed"]}
    code, output = run_cli("run", str(path), "--out", str(out), "--no-progress")
    assert code == 1 and "0 ok, 1 failed, 2 already done" in output  # only the failed job re-ran
    code, output = run_cli("run", str(path), "--out", str(out), "--no-progress", "--force")
    assert code == 1 and "2 ok, 1 failed, 0 already done" in output
    assert statuses(out)["module-profile/softmax"] == ["ok", "ok"]
    store = ResultStore.in_dir(out)
    forced = store.runs()[-1]["run_id"]
    every = [r for r in store.results() if r.job == "module-profile/softmax"]
    current = [r for r in store.current_results() if r.job == "module-profile/softmax"]
    assert len(every) == 2 * len(current) > 0  # two runs stored, the current view shows the forced one only
    assert {r.run_id for r in current} == {forced}
    code, output = run_cli("run", str(path), "--out", str(out), "--dry-run")
    assert code == 0 and "done  module-profile/softmax" in output and "todo  module-profile/broken" in output


def test_current_view_follows_store_order_within_one_second(write_suite, tmp_path, monkeypatch):
    """Run ids of runs started in the same second differ only in a random suffix: the newer run
    must win even when its suffix sorts first."""
    suite, out = parse_suite(SUITE, "s.yaml"), tmp_path / "out"
    for run_id, force in (("20261129T120000Z-ffffff", False), ("20261129T120000Z-000000", True)):
        monkeypatch.setattr(runner, "new_run_id", lambda run_id=run_id: run_id)
        runner.run_suite(suite, out, force=force, progress=False, echo=lambda _: None)
    current = ResultStore.in_dir(out).current_results()
    assert current and {r.run_id for r in current} == {"20261129T120000Z-000000"}


def test_rows_follow_the_schema_and_export(write_suite, tmp_path):
    out = tmp_path / "out"
    run_cli("run", str(write_suite(SUITE)), "--out", str(out), "--no-progress")
    code, text = run_cli("results", "--out", str(out), "--format", "json")
    assert code == 0
    rows = json.loads(text)
    assert rows and set(rows[0]) == set(RESULT_FIELDS)
    row = next(r for r in rows if r["job"] == "module-profile/softmax" and r["metric"] == "forward_ms")
    assert row["unit"] == "ms" and row["higher_is_better"] is False and row["value"] > 0
    assert row["protocol"]["evaluator"]["grid"] == [4, 4] and row["protocol"]["variant"]["name"] == "softmax"
    prov = row["provenance"]
    assert {"versions", "git_revision", "device", "seeds", "started_at", "finished_at"} <= set(prov)
    assert prov["versions"]["torch"] and prov["device"]["device"] == "cpu" and prov["seeds"] == {"suite_seed": 0}
    assert row["config"]["variant"] == {"name": "softmax", "options": {}}
    params = next(r for r in rows if r["job"] == "module-profile/softmax" and r["metric"] == "params")
    assert params["value"] == 16 * 48 + 48 + 16 * 16 + 16  # qkv + proj
    csv_path = tmp_path / "r.csv"
    assert run_cli("results", "--out", str(out), "--format", "csv", "--output", str(csv_path))[0] == 0
    frame = pd.read_csv(csv_path)
    assert list(frame.columns) == list(RESULT_FIELDS) and len(frame) == len(rows) == 6
    assert json.loads(frame.loc[0, "provenance"])["versions"]["torch"]
    code, text = run_cli("results", "--out", str(out), "--jobs")
    assert code == 0 and "unknown lasad decay" in text


def test_keyboard_interrupt_keeps_finished_jobs(write_suite, tmp_path, monkeypatch):
    suite = parse_suite(SUITE.replace(", {name: lasad, label: broken, options: {decay: 3d}}", ""), "s.yaml")
    out, real = tmp_path / "out", runner.run_job
    calls = []

    def interrupt_second(job, context):
        calls.append(job.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, context)

    monkeypatch.setattr(runner, "run_job", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        runner.run_suite(suite, out, progress=False, echo=lambda _: None)
    store = ResultStore.in_dir(out)
    assert [r["status"] for r in store.runs()] == ["interrupted"]
    assert [j["job"] for j in store.jobs()] == ["module-profile/softmax"]
    monkeypatch.setattr(runner, "run_job", real)
    summary = runner.run_suite(suite, out, progress=False, echo=lambda _: None)
    assert [(o.job.name, o.status) for o in summary.outcomes] == [
        ("module-profile/softmax", "skipped"), ("module-profile/linear", "ok")]


def test_kill_9_loses_only_the_job_in_flight(write_suite, tmp_path):
    """A real SIGKILL right after the second stored job: the store stays readable and the rerun
    does only what is missing."""
    variants = ", ".join(["softmax", "linear", "linear-sub", "linear-dwc", "lina", "lit"])
    path = write_suite(f"""\
attention: [{variants}]
evaluators:
  - name: module-profile
    options: {{dim: 64, num_heads: 4, grid: [16, 16], prefix: 64, repeats: 2}}
""")
    out = tmp_path / "out"
    kill_9_after("lina_bench.engine.store:ResultStore.record_job", 2, "run", str(path), "--out", str(out),
                 "--no-progress")
    assert statuses(out) == {"module-profile/softmax": ["ok"], "module-profile/linear": ["ok"]}
    code, output = run_cli("run", str(path), "--out", str(out), "--no-progress")
    assert code == 0 and "already done" in output
    after = statuses(out)
    assert set(after) == {f"module-profile/{v}" for v in variants.split(", ")}
    assert all(s == ["ok"] for s in after.values())  # nothing ran twice
