"""The results store: one SQLite file in the output directory.

Safe with several processes writing at once: WAL journal, a generous busy timeout, and every write
(a job with all its rows) in one ``BEGIN IMMEDIATE`` transaction, so a reader never sees half a job
and an interrupted run loses only the job in flight.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.schema import JSON_FIELDS, RESULT_FIELDS, Result, canonical_json

STORE_NAME = "results.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
    status TEXT NOT NULL DEFAULT 'running');
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL, job_key TEXT NOT NULL, job TEXT NOT NULL, suite TEXT NOT NULL,
    generator TEXT, variant TEXT, evaluator TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    config TEXT NOT NULL, protocol TEXT NOT NULL, provenance TEXT NOT NULL,
    PRIMARY KEY (run_id, job_key));
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs (job_key, status);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, suite TEXT NOT NULL, job TEXT NOT NULL,
    job_key TEXT NOT NULL, generator TEXT, variant TEXT, evaluator TEXT NOT NULL, metric TEXT NOT NULL,
    value REAL NOT NULL, unit TEXT NOT NULL, higher_is_better INTEGER, protocol TEXT NOT NULL,
    config TEXT NOT NULL, provenance TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS results_by_run ON results (run_id);
"""


def _retry_while_locked(fn, seconds: float = 60.0) -> None:
    """Call ``fn`` until it does not fail with "database is locked" (or ``seconds`` pass)."""
    deadline, pause = time.monotonic() + seconds, 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


@dataclass
class JobRecord:
    """The outcome of one job: ``status`` is "ok" or "failed" (with ``error``)."""

    run_id: str
    job_key: str
    job: str
    suite: str
    generator: str | None
    variant: str | None
    evaluator: str
    status: str
    error: str | None
    config: dict[str, Any]
    protocol: dict[str, Any]
    provenance: dict[str, Any]


class ResultStore:
    """Results of every run in one output directory (``<out>/results.sqlite``)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise LinaBenchError(f"no results store at {self.path} (run `lina-bench run --out DIR` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 60000")
            _retry_while_locked(self._initialize)
        except sqlite3.DatabaseError as exc:
            raise LinaBenchError(f"{self.path} is not a usable lina-bench results store: {exc}") from exc

    def _initialize(self) -> None:
        # Switching to WAL takes an exclusive lock and does not wait on the busy timeout when another
        # process is creating the same store at that moment, hence the retries around it.
        self._db.execute("PRAGMA journal_mode = WAL")
        with self._write() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)

    @classmethod
    def in_dir(cls, out_dir: str | Path, create: bool = True) -> "ResultStore":
        return cls(Path(out_dir) / STORE_NAME, create=create)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: takes the write lock up front, waits for other writers."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def start_run(self, run_id: str, suite: str, started_at: str) -> None:
        with self._write() as db:
            db.execute("INSERT INTO runs (run_id, suite, started_at) VALUES (?, ?, ?)", (run_id, suite, started_at))

    def finish_run(self, run_id: str, status: str, finished_at: str) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", (status, finished_at, run_id))

    def record_job(self, record: JobRecord, results: list[Result]) -> None:
        """Store a job and its result rows atomically."""
        with self._write() as db:
            db.execute(f"INSERT OR REPLACE {_INTO_JOBS}", _job_row(record))
            db.executemany(_INTO_RESULTS, [_row(r) for r in results])

    def import_results(self, batches: Sequence[tuple[str, Sequence[Result]]]) -> list[tuple[int, int]]:
        """Store exported rows, all batches in one transaction; per batch: (rows added, rows already stored).

        A row is identified by (run_id, job_key, metric). A row stored before with another value raises
        :class:`LinaBenchError` naming the batch's label and the row, and nothing at all is stored. The
        new rows' runs (status 'imported', times from the rows' provenance) and jobs (status 'ok') are
        stored too, unless already there, so that :meth:`current_results` sees them."""
        with self._write() as db:
            known = _stored_values(db, {r.run_id for _, rows in batches for r in rows})
            new = [_new_rows(label, rows, known) for label, rows in batches]
            added = [r for rows in new for r in rows]
            db.executemany("INSERT OR IGNORE INTO runs (run_id, suite, started_at, finished_at, status) "
                           "VALUES (?, ?, ?, ?, 'imported')", _imported_runs(added))
            db.executemany(f"INSERT OR IGNORE {_INTO_JOBS}", [_job_row(_imported_job(r)) for r in added])
            db.executemany(_INTO_RESULTS, [_row(r) for r in added])
        return [(len(rows), len(batch) - len(rows)) for rows, (_, batch) in zip(new, batches, strict=True)]

    def completed_keys(self) -> set[str]:
        """Job keys that finished successfully in any run."""
        return {k for (k,) in self._db.execute("SELECT DISTINCT job_key FROM jobs WHERE status = 'ok'")}

    def runs(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT * FROM runs ORDER BY started_at, rowid")
        return [dict(zip([c[0] for c in cur.description], row, strict=True)) for row in cur]

    def jobs(self, run_id: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM jobs", ()
        if run_id:
            query, args = query + " WHERE run_id = ?", (run_id,)
        cur = self._db.execute(query, args)
        cols = [c[0] for c in cur.description]
        return [_decode(dict(zip(cols, row, strict=True))) for row in cur]

    def results(self, run_id: str | None = None, suite: str | None = None) -> list[Result]:
        where, args = [], []
        for column, value in (("run_id", run_id), ("suite", suite)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        query = f"SELECT {', '.join(RESULT_FIELDS)} FROM results"
        query += (" WHERE " + " AND ".join(where)) if where else ""
        rows = self._db.execute(query + " ORDER BY id", args)
        return [Result(**_decode(dict(zip(RESULT_FIELDS, row, strict=True)))) for row in rows]

    def current_results(self, suite: str | None = None) -> list[Result]:
        """For every job, the rows of its most recent successful run (what ``run`` skips).

        "Most recent" is the latest ``finished_at`` of the job's provenance (UTC ISO times compare as
        strings; jobs without one count as oldest), so runs imported from several machines rank by
        when they ran, not by import order; ties go to the job stored last (rowid), never to the run
        id: two runs started in the same second have run ids that differ only in their random suffix."""
        latest = dict(self._db.execute("SELECT job_key, run_id FROM jobs WHERE status = 'ok' "
                                       "ORDER BY json_extract(provenance, '$.finished_at'), rowid"))
        return [r for r in self.results(suite=suite) if latest.get(r.job_key) == r.run_id]


_INTO_JOBS = "INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INTO_RESULTS = f"INSERT INTO results ({', '.join(RESULT_FIELDS)}) VALUES ({', '.join('?' * len(RESULT_FIELDS))})"


def _job_row(record: JobRecord) -> tuple[Any, ...]:
    return (record.run_id, record.job_key, record.job, record.suite, record.generator, record.variant,
            record.evaluator, record.status, record.error, canonical_json(record.config),
            canonical_json(record.protocol), canonical_json(record.provenance))


def _stored_values(db: sqlite3.Connection, run_ids: set[str]) -> dict[tuple[str, str, str], float]:
    """(run_id, job_key, metric) -> value of the stored rows of these runs."""
    values = {}
    for run_id in run_ids:
        rows = db.execute("SELECT job_key, metric, value FROM results WHERE run_id = ?", (run_id,))
        values.update(((run_id, key, metric), value) for key, metric, value in rows)
    return values


def _new_rows(label: str, rows: Sequence[Result], known: dict[tuple[str, str, str], float]) -> list[Result]:
    """The rows not in ``known`` (which they join); a known row with another value raises."""
    new = []
    for index, row in enumerate(rows):
        ident = (row.run_id, row.job_key, row.metric)
        if ident not in known:
            known[ident] = row.value
            new.append(row)
        elif known[ident] != row.value:
            raise LinaBenchError(f"{label}: row {index}: field 'value' is {row.value!r}, but the store has "
                                 f"{known[ident]!r} for run {row.run_id}, job {row.job}, metric {row.metric!r}")
    return new


def _imported_runs(rows: list[Result]) -> list[tuple[str, str, str, str | None]]:
    """(run_id, suite, started_at, finished_at) of the rows' runs: their jobs' earliest start, latest end."""
    by_run: dict[str, list[Result]] = {}
    for row in rows:
        by_run.setdefault(row.run_id, []).append(row)
    runs = []
    for run_id, mine in by_run.items():
        started = [r.provenance["started_at"] for r in mine if r.provenance.get("started_at")]
        finished = [r.provenance["finished_at"] for r in mine if r.provenance.get("finished_at")]
        runs.append((run_id, mine[0].suite, min(started, default=""), max(finished, default=None)))
    return runs


def _imported_job(row: Result) -> JobRecord:
    return JobRecord(row.run_id, row.job_key, row.job, row.suite, row.generator, row.variant, row.evaluator,
                     "ok", None, row.config, row.protocol, row.provenance)


def _row(result: Result) -> tuple[Any, ...]:
    values = []
    for name in RESULT_FIELDS:
        value = getattr(result, name)
        if name in JSON_FIELDS:
            value = canonical_json(value)
        elif name == "higher_is_better" and value is not None:
            value = int(value)
        values.append(value)
    return tuple(values)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for name in JSON_FIELDS:
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    if row.get("higher_is_better") is not None:
        row["higher_is_better"] = bool(row["higher_is_better"])
    return row
