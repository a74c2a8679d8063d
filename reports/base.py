"""Report helpers; the :class:`Report` contract lives in :mod:`lina_bench.api.report` (re-exported here)."""

from __future__ import annotations

import pandas as pd

from lina_bench.api.report import Report

__all__ = ["Report", "provenance_line", "setting_label"]


def setting_label(job: str) -> str:
    """The evaluator label of a job name ``label/target``."""
    return job.split("/", 1)[0]


def provenance_line(results: pd.DataFrame) -> str:
    """Versions and git revision of the first row's run, and every run id the results come from."""
    if results.empty:
        return "No results."
    prov = results.provenance.iloc[0]
    versions = prov.get("versions", {})
    return (f"lina-bench {versions.get('lina-bench')}, git {prov.get('git_revision')}, torch {versions.get('torch')}, "
            f"fvcore {versions.get('fvcore')}; run ids: {', '.join(sorted(results.run_id.unique()))}")
