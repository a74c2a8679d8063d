"""Where benchmark scripts write their results: ``benchmarks/results/<cpu|gpu>-<device slug>/``."""

from __future__ import annotations

import csv
import re
from pathlib import Path


def results_dir(device_name: str, gpu: bool = False, out: Path | None = None) -> Path:
    """``out`` if given, else the committed results folder of this device; created."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device_name.split(" (")[0]).strip("-").lower()
    folder = out or Path(__file__).parent / "results" / f"{'gpu' if gpu else 'cpu'}-{slug}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows as CSV; columns in first-seen order over all rows."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
