"""Processes creating and writing one results store at once lose nothing and corrupt nothing."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from lina_bench.api.schema import Result
from lina_bench.engine.store import JobRecord, ResultStore

JOBS, ROWS = 40, 5
TAGS = ("a", "b", "c")


def writer(path: str, tag: str, start) -> None:
    start.wait()
    store = ResultStore(path)  # every writer may be the one that creates the file
    for j in range(JOBS):
        if j and j % 10 == 0:  # reopen: connection setup races with the other writers too
            store.close()
            store = ResultStore(path)
        key = f"{tag}-{j}"
        record = JobRecord("run-" + tag, key, key, "s", None, "v", "e", "ok", None, {"j": j}, {}, {})
        rows = [Result("run-" + tag, "s", key, key, None, "v", "e", f"m{r}", float(r), "1", True,
                       {}, {"j": j}, {"who": tag}) for r in range(ROWS)]
        store.record_job(record, rows)
    store.close()


def test_concurrent_writers(tmp_path: Path):
    path = str(tmp_path / "results.sqlite")
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=writer, args=(path, tag, start)) for tag in TAGS]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(TAGS)
    store = ResultStore(path)
    rows = store.results()
    assert len(rows) == len(TAGS) * JOBS * ROWS and len(store.jobs()) == len(TAGS) * JOBS
    assert store.completed_keys() == {f"{t}-{j}" for t in TAGS for j in range(JOBS)}
    for tag in TAGS:  # each job's rows are complete and intact
        mine = [r for r in rows if r.provenance == {"who": tag}]
        assert len(mine) == JOBS * ROWS and all(r.higher_is_better is True for r in mine)
