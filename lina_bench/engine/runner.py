"""Runs a suite's jobs and stores their results; finished jobs are skipped on the next run."""

from __future__ import annotations

import dataclasses
import secrets
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tqdm import tqdm

from lina_bench.api import registry
from lina_bench.api.errors import JobFailed, LinaBenchError
from lina_bench.api.evaluator import EvalContext, Evaluator, Measurement
from lina_bench.api.schema import RESULT_FIELDS, Metric, Result
from lina_bench.engine.provenance import provenance
from lina_bench.engine.store import JobRecord, ResultStore
from lina_bench.engine.suite import Job, Suite


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; a CUDA device that is not there is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LinaBenchError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    return device


def on_device(suite: Suite, device: str | None = None) -> Suite:
    """The suite with its device (or the override) resolved; the device is part of every job key."""
    return dataclasses.replace(suite, device=resolve_device(device or suite.device))


@dataclass
class JobOutcome:
    job: Job
    status: str  # "ok", "failed" or "skipped"
    seconds: float = 0.0
    error: str | None = None
    metrics: list[Metric] = field(default_factory=list)


@dataclass
class RunSummary:
    run_id: str
    out_dir: Path
    outcomes: list[JobOutcome]
    report_files: list[Path] = field(default_factory=list)
    report_errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def prepare(job: Job, device: str) -> tuple[Evaluator, Any, Any]:
    """Build the job's evaluator, its target kind and its target (bad options or files raise here)."""
    evaluator = registry.evaluators.build(job.evaluator.name, **job.evaluator.options)
    kind = registry.targets.build(job.kind)
    return evaluator, kind, kind.build(job, device)


def measure(job: Job, evaluator: Evaluator, kind: Any, target: Any, context: EvalContext) -> Measurement:
    """Run the evaluator on the target: its metrics, the row protocol (the evaluator's part as it
    learned it while measuring, and the target kind's part) and the evaluator's details."""
    result = evaluator.evaluate(target, context)
    if not isinstance(result, Measurement):  # bare metrics: the protocol known before measuring
        result = Measurement(result, evaluator.protocol())
    protocol = {"evaluator": {"name": job.evaluator.name, **result.protocol}, kind.protocol_key: kind.protocol(target)}
    return Measurement(result.metrics, protocol, result.details)


def run_job(job: Job, context: EvalContext) -> tuple[list[Metric], dict[str, Any]]:
    """Build the job's evaluator and target, and measure: (metrics, row protocol)."""
    result = measure(job, *prepare(job, context.device), context)
    return result.metrics, result.protocol


def run_suite(suite: Suite, out_dir: str | Path, force: bool = False, device: str | None = None,
              progress: bool = True, echo: Callable[[str], None] = print) -> RunSummary:
    """Run every job of ``suite`` not already finished in ``out_dir`` (all of them with ``force``).

    A job that raises is recorded as failed with its error and the run goes on. Each finished job
    is committed to the store at once, so an interrupted run loses only the job in flight.
    """
    out_dir = Path(out_dir)
    suite = on_device(suite, device)
    store = ResultStore.in_dir(out_dir)
    done = set() if force else store.completed_keys()
    run_id = new_run_id()
    store.start_run(run_id, suite.name, utc_now())
    context = EvalContext(device=suite.device, seed=suite.seed, work_dir=out_dir / "work", progress=progress)
    outcomes: list[JobOutcome] = []
    jobs = suite.jobs()
    try:
        for job in tqdm(jobs, desc=f"suite {suite.name}", unit="job", disable=not progress):
            if job.key in done:
                outcomes.append(JobOutcome(job, "skipped"))
                continue
            outcomes.append(_run_and_store(job, run_id, context, store))
            last = outcomes[-1]
            detail = f"{last.seconds:.1f}s" + (f": {last.error.splitlines()[0]}" if last.error else "")
            echo(f"{last.status:>6}  {job.name}  ({detail})")
    except KeyboardInterrupt:
        store.finish_run(run_id, "interrupted", utc_now())
        store.close()
        raise
    summary = RunSummary(run_id, out_dir, outcomes)
    if suite.reports:
        write_reports(suite, store, out_dir, summary)
    failed = summary.failed or summary.report_errors
    store.finish_run(run_id, "failed" if failed else "ok", utc_now())
    store.close()
    return summary


def results_frame(store: ResultStore, suite: str) -> pd.DataFrame:
    """The suite's current results (each job's latest successful run) as a DataFrame."""
    rows = [dataclasses.asdict(r) for r in store.current_results(suite)]
    return pd.DataFrame(rows, columns=list(RESULT_FIELDS))


def write_reports(suite: Suite, store: ResultStore, out_dir: Path, summary: RunSummary) -> None:
    """Write the suite's reports into ``out_dir/<suite name>/``; a failing report is recorded."""
    frame = results_frame(store, suite.name)
    report_dir = out_dir / suite.name
    report_dir.mkdir(parents=True, exist_ok=True)
    for entry in suite.reports:
        try:
            report = registry.reports.build(entry.name, **entry.options)
            summary.report_files += report.write(report.relevant(frame), report_dir)
        except Exception as exc:  # reported with the run's outcome, exit code 1
            summary.report_errors.append(f"report {entry.name!r}: {type(exc).__name__}: {exc}")


def _run_and_store(job: Job, run_id: str, context: EvalContext, store: ResultStore) -> JobOutcome:
    started, clock = utc_now(), time.perf_counter()
    metrics: list[Metric] = []
    protocol: dict[str, Any] = {}
    error = None
    try:
        metrics, protocol = run_job(job, context)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # recorded as a failed job; the suite goes on
        tail = "".join(traceback.format_exception(exc)[-3:])
        error = f"{type(exc).__name__}: {exc}\n{tail}"
    seconds = time.perf_counter() - clock
    record_job(store, run_id, job, metrics, protocol, error, context, started)
    return JobOutcome(job, "failed" if error else "ok", seconds, error, metrics)


def record_job(store: ResultStore, run_id: str, job: Job, metrics: list[Metric], protocol: dict[str, Any],
               error: str | None, context: EvalContext, started: str) -> None:
    """Store one job's outcome and result rows, with provenance."""
    prov = provenance(context.device, {"suite_seed": context.seed}, started, utc_now())
    generator = job.generator.name if job.generator else None
    variant = job.variant.name if job.variant else None
    record = JobRecord(run_id, job.key, job.name, job.suite, generator, variant, job.evaluator.name,
                       "failed" if error else "ok", error, job.config, protocol, prov)
    results = [Result(run_id, job.suite, job.name, job.key, generator, variant, job.evaluator.name, m.name,
                      float(m.value), m.unit, m.higher_is_better, protocol, job.config, prov) for m in metrics]
    store.record_job(record, results)


@dataclass
class CommandResult:
    """What a measuring command got: its metrics, the stored protocol and the run id (None when not
    stored: ``--no-store``, or a torchrun rank other than 0)."""

    metrics: list[Metric]
    protocol: dict[str, Any]
    run_id: str | None
    details: Any = None  # the evaluator's fuller report, for the command's output


def run_command(job: Job, out_dir: str | Path, context: EvalContext, store: bool = True) -> CommandResult:
    """A measuring command's job, on the suite path: prepared (bad usage raises, nothing stored),
    measured, and stored as a run of its own. A failed measurement (:class:`JobFailed`, e.g. NaN
    images) is stored as a failed job and raised (exit 1)."""
    from lina_bench.api.distributed import rank_and_world

    evaluator, kind, target = prepare(job, context.device)
    started = utc_now()
    stored = store and rank_and_world()[0] == 0
    try:
        result = measure(job, evaluator, kind, target, context)
    except JobFailed as exc:
        if stored:
            _record_run(out_dir, job, [], {}, f"{type(exc).__name__}: {exc}", context, started)
        raise
    run_id = _record_run(out_dir, job, result.metrics, result.protocol, None, context, started) if stored else None
    return CommandResult(result.metrics, result.protocol, run_id, result.details)


def _record_run(out_dir: str | Path, job: Job, metrics: list[Metric], protocol: dict[str, Any], error: str | None,
                context: EvalContext, started: str) -> str:
    """Store one job as a run of its own (a command's measurement)."""
    store = ResultStore.in_dir(out_dir)
    run_id = new_run_id()
    store.start_run(run_id, job.suite, started)
    record_job(store, run_id, job, metrics, protocol, error, context, started)
    store.finish_run(run_id, "failed" if error else "ok", utc_now())
    store.close()
    return run_id
