"""Reading ``lina-bench results --format json`` exports back into :class:`Result` rows.

Every row is checked before anything is stored; a problem raises :class:`LinaBenchError` with a
one-line message naming the file, the row (0-based, as ``jq '.[N]'`` counts) and the field.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

from lina_bench.api.errors import LinaBenchError
from lina_bench.api.schema import RESULT_FIELDS, Result

SHA256_RE = re.compile(r"[0-9a-f]{64}")
PROVENANCE_TIMES = ("started_at", "finished_at")  # compared as strings: when a run started and finished


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _string_or_null(value: Any) -> bool:
    return value is None or isinstance(value, str)


# field -> (what it must be, check); every Result field has a rule
_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **{name: ("a string", _string) for name in ("run_id", "suite", "job", "evaluator", "metric", "unit")},
    "job_key": ("a sha256 (64 lowercase hex digits)", lambda v: isinstance(v, str) and bool(SHA256_RE.fullmatch(v))),
    "generator": ("a string or null", _string_or_null),
    "variant": ("a string or null", _string_or_null),
    "value": ("a finite number", _finite_number),
    "higher_is_better": ("true, false or null", lambda v: v is None or isinstance(v, bool)),
    **{name: ("an object", lambda v: isinstance(v, dict)) for name in ("protocol", "config", "provenance")},
}


def _show(value: Any) -> str:
    """A short rendering of a bad value: strings quoted, the rest as JSON."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _names(names: list[str]) -> str:
    return ("field " if len(names) == 1 else "fields ") + ", ".join(map(repr, names))


def parse_row(row: Any, where: str) -> Result:
    """One exported row -> :class:`Result`; ``where`` ("FILE: row N") starts any error message."""
    if not isinstance(row, dict):
        raise LinaBenchError(f"{where}: must be an object with the result fields, got {_show(row)}")
    missing = [name for name in RESULT_FIELDS if name not in row]
    if missing:
        raise LinaBenchError(f"{where}: missing {_names(missing)}")
    unknown = sorted(set(row) - set(RESULT_FIELDS))
    if unknown:
        raise LinaBenchError(f"{where}: unknown {_names(unknown)}")
    for name in RESULT_FIELDS:
        meaning, check = _RULES[name]
        if not check(row[name]):
            raise LinaBenchError(f"{where}: field {name!r} must be {meaning}, got {_show(row[name])}")
    for name in PROVENANCE_TIMES:
        if not _string_or_null(row["provenance"].get(name)):
            raise LinaBenchError(f"{where}: field 'provenance.{name}' must be a time string or null, "
                                 f"got {_show(row['provenance'][name])}")
    return Result(**{**row, "value": float(row["value"])})


def load_export(path: str | Path) -> list[Result]:
    """The rows of one JSON export (a list of row objects), all checked."""
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise LinaBenchError(f"{path}: no such file") from None
    except OSError as exc:
        raise LinaBenchError(f"{path}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are no Unicode text
        raise LinaBenchError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise LinaBenchError(f"{path}: must be a JSON list of result rows (`lina-bench results --format json`), "
                             f"got {_show(data)}")
    return [parse_row(row, f"{path}: row {index}") for index, row in enumerate(data)]
