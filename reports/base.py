"""Report helpers; the :class:`Report` contract lives in :mod:`lina_bench.api.report` (re-exported here)."""

from __future__ import annotations

from lina_bench.api.report import Report

__all__ = ["Report", "setting_label"]


def setting_label(job: str) -> str:
    """The evaluator label of a job name ``label/target``."""
    return job.split("/", 1)[0]
