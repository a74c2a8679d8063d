"""The results schema: one :class:`Result` row per (job, metric).

=================  ======  ====================================================================
field              type    meaning
=================  ======  ====================================================================
run_id             str     one invocation of ``lina-bench run`` (UTC time + random suffix)
suite              str     suite name
job                str     job name, ``generator[variant]/evaluator`` style, unique in a suite
job_key            str     sha256 of the job's full config (what makes a job "the same job")
generator          str?    registry name of the generator (None for module-level evaluators)
variant            str?    attention variant (None when not applicable)
evaluator          str     registry name of the evaluator
metric             str     metric name, e.g. ``forward_ms``
value              float   the number
unit               str     e.g. ``ms``, ``params``, ``images/s``, ``1`` for dimensionless
higher_is_better   bool?   direction for regression checks (None: neither, e.g. a count)
protocol           dict    what makes two numbers comparable (evaluator settings, generator
                           resolution/steps/guidance, reference statistics, conventions)
config             dict    the job's full config as run (the job_key is its hash)
provenance         dict    package versions, git revision, device, seeds, started_at, finished_at
=================  ======  ====================================================================

Two rows are comparable only when their ``metric`` and ``protocol`` are equal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One measured number, as an evaluator returns it."""

    name: str
    value: float
    unit: str
    higher_is_better: bool | None = None


@dataclass
class Result:
    """One stored row (see the module docstring for the fields)."""

    run_id: str
    suite: str
    job: str
    job_key: str
    generator: str | None
    variant: str | None
    evaluator: str
    metric: str
    value: float
    unit: str
    higher_is_better: bool | None
    protocol: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


RESULT_FIELDS = tuple(Result.__dataclass_fields__)
JSON_FIELDS = ("protocol", "config", "provenance")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace) used for hashing and storage."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()
