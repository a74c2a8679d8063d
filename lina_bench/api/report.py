"""What a report is: files written from a suite's current results, reading only what it declares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from fnmatch import fnmatchcase
from pathlib import Path
from typing import ClassVar

import pandas as pd

from lina_bench.api.errors import LinaBenchError


class Report(ABC):
    """Builds files (tables, plots, a markdown summary) from a suite's results.

    ``reads`` declares the rows a report uses: evaluator name -> metric name patterns (``fnmatch``,
    e.g. ``"gmacs@*px"``). The runner hands :meth:`write` only those rows, one per stored
    :class:`lina_bench.api.schema.Result` (each job's latest successful run), protocol/config/
    provenance columns as dicts; :meth:`select` gives one evaluator's.
    """

    reads: ClassVar[dict[str, tuple[str, ...]]] = {}

    def relevant(self, results: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``results`` this report declares it reads."""
        keep = [any(fnmatchcase(m, p) for p in self.reads.get(e, ())) for e, m in zip(results.evaluator,
                                                                                      results.metric, strict=True)]
        return results[keep] if len(results) else results

    def select(self, results: pd.DataFrame, evaluator: str) -> pd.DataFrame:
        """The declared rows of one evaluator."""
        if evaluator not in self.reads:
            raise LinaBenchError(f"report {type(self).__name__} reads {evaluator!r} rows without declaring them")
        return self.relevant(results[results.evaluator == evaluator])

    @abstractmethod
    def write(self, results: pd.DataFrame, out_dir: Path) -> list[Path]:
        """Write into ``out_dir`` (created by the caller); return the files written."""
