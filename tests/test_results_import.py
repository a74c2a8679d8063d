"""`lina-bench results import`: exports from several machines merged into one store, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lina_bench.api.schema import config_hash

from cli_helpers import kill_9_after, run_cli

SUITE = """\
name: tiny
attention: [{attention}]
evaluators:
  - name: module-profile
    options: {{dim: 16, num_heads: 2, grid: [4, 4], prefix: 2, repeats: 1}}
"""
RUN_OLD, RUN_NEW = "20260101T000000Z-ffffff", "20260101T000000Z-000000"  # the newer run sorts first by id


def run_suite(write_suite, out: Path, attention: str, *args: str) -> None:
    path = write_suite(SUITE.format(attention=attention), f"{out.name}.yaml")
    code, output = run_cli("run", str(path), "--out", str(out), "--no-progress", *args)
    assert code == 0, output


def rows(out: Path, *args: str) -> list[dict[str, Any]]:
    """`lina-bench results --format json` of ``out``."""
    code, text = run_cli("results", "--out", str(out), "--format", "json", *args)
    assert code == 0, text
    return json.loads(text)


def export(out: Path, path: Path, *args: str) -> Path:
    code, text = run_cli("results", "--out", str(out), "--format", "json", "--output", str(path), *args)
    assert code == 0, text
    return path


def import_files(out: Path, *files: Path) -> tuple[int, str]:
    return run_cli("results", "import", *map(str, files), "--out", str(out))


def row(run_id: str = RUN_OLD, job: str = "module-profile/softmax", metric: str = "forward_ms", value: Any = 1.5,
        finished_at: str | None = "2026-01-01T00:00:01.000+00:00") -> dict[str, Any]:
    """A well-formed exported row; its job key hashes its config, as the runner's do."""
    config = {"suite": "synthetic", "job": job}
    provenance = {"started_at": "2026-01-01T00:00:00.000+00:00", "finished_at": finished_at} if finished_at else {}
    return {"run_id": run_id, "suite": "synthetic", "job": job, "job_key": config_hash(config), "generator": None,
            "variant": "softmax", "evaluator": "module-profile", "metric": metric, "value": value, "unit": "ms",
            "higher_is_better": False, "protocol": {"evaluator": {"name": "module-profile"}}, "config": config,
            "provenance": provenance}


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def store_contents(out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Every result row, job and run of ``out``."""
    from lina_bench.engine.store import ResultStore

    store = ResultStore.in_dir(out)
    contents = rows(out, "--run", "all"), store.jobs(), store.runs()
    store.close()
    return contents


def test_round_trip_of_all_and_current_exports(write_suite, tmp_path):
    """A store with two runs of the same jobs, exported and imported into empty stores, reads back the same."""
    a = tmp_path / "a"
    run_suite(write_suite, a, "softmax, linear")
    run_suite(write_suite, a, "softmax, linear", "--force")
    assert len(rows(a, "--run", "all")) == 2 * len(rows(a)) == 12
    code, output = import_files(tmp_path / "b", export(a, tmp_path / "all.json", "--run", "all"))
    assert code == 0 and f"{tmp_path / 'all.json'}: 12 added, 0 already stored" in output, output
    for view in (("--run", "all"), ("--run", "current"), ("--run", "latest")):
        assert rows(tmp_path / "b", *view) == rows(a, *view), view
    code, output = import_files(tmp_path / "c", export(a, tmp_path / "current.json"))
    assert code == 0 and ": 6 added, 0 already stored" in output, output
    assert rows(tmp_path / "c") == rows(a) == rows(tmp_path / "c", "--run", "all")


def test_two_machines_merge_and_the_last_finished_run_is_current(write_suite, tmp_path):
    """Whatever the import order (one command or two), a job run on both machines shows the later run."""
    run_suite(write_suite, tmp_path / "node1", "softmax, linear")
    run_suite(write_suite, tmp_path / "node2", "softmax, lina")  # finishes later
    node1, node2 = (export(tmp_path / n, tmp_path / f"{n}.json", "--run", "all") for n in ("node1", "node2"))
    run1, run2 = rows(tmp_path / "node1")[0]["run_id"], rows(tmp_path / "node2")[0]["run_id"]
    keys = {r["job"]: r["job_key"] for n in ("node1", "node2") for r in rows(tmp_path / n)}
    assert len(keys) == 3  # module-profile/softmax has the same job key on both machines
    expected = {"module-profile/softmax": run2, "module-profile/linear": run1, "module-profile/lina": run2}
    assert import_files(tmp_path / "one-command", node2, node1)[0] == 0
    assert import_files(tmp_path / "two-commands", node2)[0] == 0
    assert import_files(tmp_path / "two-commands", node1)[0] == 0
    for merged in ("one-command", "two-commands"):
        current = rows(tmp_path / merged)
        assert len(current) == 9 and len(rows(tmp_path / merged, "--run", "all")) == 12
        assert {r["job"]: r["run_id"] for r in current} == expected, merged


def test_current_is_the_last_finished_run_and_ties_go_to_the_last_stored(tmp_path):
    out = tmp_path / "out"
    newer = write_json(tmp_path / "new.json", [row(RUN_NEW, finished_at="2026-01-02T00:00:00.000+00:00")])
    older = write_json(tmp_path / "old.json", [row(RUN_OLD)])
    undated = write_json(tmp_path / "undated.json", [row("20260103T000000Z-aaaaaa", finished_at=None)])
    for path in (newer, older, undated):  # an older run imported after a newer one, then one with no end time
        assert import_files(out, path)[0] == 0
    assert [r["run_id"] for r in rows(out)] == [RUN_NEW]
    tie = tmp_path / "tie"
    assert import_files(tie, write_json(tmp_path / "a.json", [row(RUN_OLD)]))[0] == 0
    assert import_files(tie, write_json(tmp_path / "b.json", [row(RUN_NEW)]))[0] == 0
    assert [r["run_id"] for r in rows(tie)] == [RUN_NEW]  # stored last, although its run id sorts first


def test_importing_again_adds_nothing(tmp_path):
    out = tmp_path / "out"
    first = write_json(tmp_path / "first.json", [row(metric="forward_ms"), row(metric="params", value=1088)])
    code, output = import_files(out, first)
    assert code == 0 and f"{first}: 2 added, 0 already stored" in output, output
    before = store_contents(out)
    code, output = import_files(out, first, first)
    assert code == 0 and output.count(f"{first}: 0 added, 2 already stored") == 2, output
    assert store_contents(out) == before
    more = write_json(tmp_path / "more.json", [row(metric="params", value=1088), row(metric="tokens_per_s")])
    code, output = import_files(out, more)
    assert code == 0 and f"{more}: 1 added, 1 already stored" in output, output
    assert len(store_contents(out)[0]) == 3


BAD_ROWS = [  # (change to the last of three rows, the message after "FILE: ")
    (lambda r: r.pop("unit"), "row 2: missing field 'unit'"),
    (lambda r: r.update(colour="red"), "row 2: unknown field 'colour'"),
    (lambda r: r.update(value="abc"), "row 2: field 'value' must be a finite number, got 'abc'"),
    (lambda r: r.update(value=True), "row 2: field 'value' must be a finite number, got true"),
    (lambda r: r.update(value=float("nan")), "row 2: field 'value' must be a finite number, got NaN"),
    (lambda r: r.update(run_id=None), "row 2: field 'run_id' must be a string, got null"),
    (lambda r: r.update(generator=3), "row 2: field 'generator' must be a string or null, got 3"),
    (lambda r: r.update(higher_is_better="yes"), "row 2: field 'higher_is_better' must be true, false or null, "
                                                 "got 'yes'"),
    (lambda r: r.update(protocol=[]), "row 2: field 'protocol' must be an object, got []"),
    (lambda r: r.update(job_key="abc"), "row 2: field 'job_key' must be a sha256 (64 lowercase hex digits), "
                                        "got 'abc'"),
    (lambda r: r.update(job_key=r["job_key"].upper()), "row 2: field 'job_key' must be a sha256"),
    (lambda r: r["provenance"].update(finished_at=5), "row 2: field 'provenance.finished_at' must be a time "
                                                      "string or null, got 5"),
]


@pytest.mark.parametrize(("change", "message"), BAD_ROWS, ids=[m for _, m in BAD_ROWS])
def test_a_bad_row_refuses_its_whole_file(tmp_path, change, message):
    out = tmp_path / "out"
    assert import_files(out, write_json(tmp_path / "before.json", [row(RUN_NEW)]))[0] == 0
    before = store_contents(out)
    data = [row(metric="forward_ms"), row(metric="params"), row(metric="tokens_per_s")]
    change(data[2])
    path = write_json(tmp_path / "bad.json", data)
    code, output = import_files(out, path)
    assert code == 2 and output.startswith(f"error: {path}: {message}") and output.count("\n") == 1, output
    assert store_contents(out) == before


@pytest.mark.parametrize(("text", "message"), [
    ("[{", "not valid JSON: "),
    ('{"rows": []}', 'must be a JSON list of result rows (`lina-bench results --format json`), got {"rows": []}'),
    ('[{}, "row"]', "row 0: missing fields 'run_id', 'suite', "),
    ("[3]", "row 0: must be an object with the result fields, got 3"),
])
def test_a_file_that_is_no_export_is_refused(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    code, output = import_files(tmp_path / "out", path)
    assert code == 2 and output.startswith(f"error: {path}: {message}") and output.count("\n") == 1, output


def test_one_bad_file_stops_every_file(tmp_path):
    out = tmp_path / "out"
    good = write_json(tmp_path / "good.json", [row()])
    bad = write_json(tmp_path / "bad.json", [row(RUN_NEW), row(RUN_NEW, value="abc")])
    code, output = import_files(out, good, bad)
    assert code == 2 and output == f"error: {bad}: row 1: field 'value' must be a finite number, got 'abc'\n"
    code, output = import_files(out, good, tmp_path / "missing.json")
    assert code == 2 and output == f"error: {tmp_path / 'missing.json'}: no such file\n"
    assert not (out / "results.sqlite").exists()  # nothing written, not even an empty store


def test_a_value_contradicting_the_store_refuses_every_file(tmp_path):
    """Checked while writing: the first file's rows, written in the same transaction, are rolled back."""
    out = tmp_path / "out"
    assert import_files(out, write_json(tmp_path / "stored.json", [row(value=1.5)]))[0] == 0
    before = store_contents(out)
    other = write_json(tmp_path / "other.json", [row(RUN_NEW)])
    clash = write_json(tmp_path / "clash.json", [row(metric="params"), row(value=2.5)])
    code, output = import_files(out, other, clash)
    assert code == 2 and output == (f"error: {clash}: row 1: field 'value' is 2.5, but the store has 1.5 for run "
                                    f"{RUN_OLD}, job module-profile/softmax, metric 'forward_ms'\n"), output
    assert store_contents(out) == before
    twice = write_json(tmp_path / "twice.json", [row(RUN_NEW), row(RUN_NEW, value=9.0)])
    code, output = import_files(out, twice)
    assert code == 2 and f"error: {twice}: row 1: field 'value' is 9.0, but the store has 1.5" in output, output
    assert store_contents(out) == before


def test_kill_9_during_the_write_stores_nothing(tmp_path):
    out = tmp_path / "out"
    path = write_json(tmp_path / "rows.json", [row(metric="forward_ms"), row(metric="params")])
    kill_9_after("lina_bench.engine.store:_row", 1, "results", "import", str(path), "--out", str(out))
    assert store_contents(out) == ([], [], [])
    assert import_files(out, path)[0] == 0 and len(store_contents(out)[0]) == 2


def test_results_keeps_its_options_and_refuses_them_before_import(tmp_path):
    code, output = run_cli("results", "--help")
    assert code == 0 and "--format [table|csv|json]" in output and "import  Load JSON exports" in output
    code, output = run_cli("results", "--out", str(tmp_path), "import", str(tmp_path / "x.json"))
    assert code == 2 and "--out is an option of `results` itself" in output
