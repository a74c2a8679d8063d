"""What a report is: files written from a suite's current results."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import pandas as pd


class Report(ABC):
    """Builds files (tables, plots, a markdown summary) from a suite's results.

    ``results`` has one row per stored :class:`lina_bench.schema.Result` (each job's latest
    successful run), with the protocol/config/provenance columns as dicts.
    """

    @abstractmethod
    def write(self, results: pd.DataFrame, out_dir: Path) -> list[Path]:
        """Write into ``out_dir`` (created by the caller); return the files written."""


def setting_label(job: str) -> str:
    """The evaluator label of a job name ``label/target``."""
    return job.split("/", 1)[0]
