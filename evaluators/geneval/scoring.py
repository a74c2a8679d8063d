"""GenEval's verdict for one image: a pure function of its prompt metadata and its detections.

This follows ``evaluation/evaluate_images.py`` of djghosh13/geneval (commit af4902f) step by step,
with the detector's output given as data instead of computed:

* per class, detections are ordered by score (``np.argsort(...)[::-1]`` on float32 scores, as
  mmdet 2.x returns them, so ties order as they do there), kept when ``score > threshold``
  (``counting_threshold`` for the ``counting`` tag; the comparison happens in float32), cut to
  ``max_objects`` *before* the optional greedy NMS (``max_overlap`` < 1, IoU with the +1 pixel
  convention);
* ``include`` clauses are ANDed, ``exclude`` clauses ORed; colour and position are judged on the
  ``count`` highest-scoring kept objects only; a position's target is an earlier include group,
  judged with the margin ``position_threshold`` times the sum of both boxes' sizes.

Tests compare every verdict and reason with the official scorer's output on synthetic detections
(``tests/fixtures/geneval/official_scores.json``). The one difference is deliberate: where a pair
of boxes stands in two relations at once, the official reason joins them in Python ``set`` order,
which changes with ``PYTHONHASHSEED``; here they come in a fixed order (left, right, above, below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from lina_bench.api.errors import LinaBenchError

COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS = ("left of", "right of", "above", "below")


@dataclass(frozen=True)
class ScoringOptions:
    """The official scorer's constants, under its own option names (``--options name=value``)."""

    threshold: float = 0.3
    counting_threshold: float = 0.9
    max_objects: int = 16
    max_overlap: float = 1.0  # NMS IoU; 1 turns NMS off
    position_threshold: float = 0.1

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None) -> ScoringOptions:
        """Options as the official ``name=value`` strings or as numbers; unknown names are errors."""
        if options is None:
            return _DEFAULT_OPTIONS
        if isinstance(options, ScoringOptions):
            return options
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise LinaBenchError(f"unknown GenEval scoring option(s) {', '.join(map(repr, unknown))}; "
                                 f"known: {', '.join(known)}")
        values: dict[str, Any] = {}
        for name, raw in options.items():
            convert = int if known[name] == "int" else float
            try:
                values[name] = convert(raw)
            except (TypeError, ValueError):
                raise LinaBenchError(f"GenEval option {name}={raw!r} is not a valid {convert.__name__}") from None
        parsed = cls(**values)
        if parsed.max_objects < 0:
            raise LinaBenchError(f"GenEval option max_objects must be >= 0, got {parsed.max_objects}")
        return parsed

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_DEFAULT_OPTIONS = ScoringOptions()


@dataclass(frozen=True)
class Kept:
    """A detection that survived thresholding, the per-class cap and NMS."""

    row: np.ndarray  # (5,) float32: x1, y1, x2, y2, score
    color: str | None


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str


def _named_records(items: Any, where: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(location, record) for each item of a list of ``{"class": name, ...}`` records; else a clear error."""
    if not isinstance(items, (list, tuple)):
        raise LinaBenchError(f"{where}: expected a list, got {type(items).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("class"), str):
            raise LinaBenchError(f"{where}[{i}] needs a 'class' name")
    return [(f"{where}[{i}]", item) for i, item in enumerate(items)]


def check_metadata(metadata: Any, where: str = "metadata") -> None:
    """Clear errors for a metadata line the scorer cannot judge (fields, counts, colours, positions)."""
    if not isinstance(metadata, Mapping):
        raise LinaBenchError(f"{where}: expected a JSON object, got {type(metadata).__name__}")
    missing = [key for key in ("tag", "include", "prompt") if key not in metadata]
    if missing:
        raise LinaBenchError(f"{where}: missing field(s) {', '.join(missing)}")
    for clause in ("include", "exclude"):
        for i, (at, req) in enumerate(_named_records(metadata.get(clause, []), f"{where}: {clause}")):
            count = req.get("count")
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise LinaBenchError(f"{at} needs an integer 'count' >= 1, got {count!r}")
            if "color" in req and req["color"] not in COLORS:
                raise LinaBenchError(f"{at}: colour {req['color']!r} is not one of {', '.join(COLORS)}")
            if "position" in req:
                pos = req["position"]
                if (not isinstance(pos, list) or len(pos) != 2 or pos[0] not in RELATIONS
                        or not isinstance(pos[1], int) or not 0 <= pos[1] < i):
                    raise LinaBenchError(f"{at}: position must be [relation, index of an earlier include], "
                                         f"relation one of {', '.join(RELATIONS)}; got {pos!r}")


def check_detections(detections: Any, where: str = "detections") -> None:
    """Clear errors for detections that are not ``{"class", "score", "box", "color"}`` records."""
    for at, det in _named_records(detections, where):
        score = det.get("score")
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise LinaBenchError(f"{at}: score must be a finite number, got {score!r}")
        box = det.get("box")
        if (not isinstance(box, (list, tuple)) or len(box) != 4
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)):
            raise LinaBenchError(f"{at}: box must be [x1, y1, x2, y2], got {box!r}")
        if det.get("color") is not None and det["color"] not in COLORS:
            raise LinaBenchError(f"{at}: colour {det['color']!r} is not one of {', '.join(COLORS)}")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two float32 boxes with the +1 pixel area convention.

    Differences of coordinates are float32 and the rest is float64, as the official
    ``compute_iou`` evaluates under the numpy 1.x its environment pins (numpy 2 would keep float32
    throughout and can flip a suppression decided exactly at the threshold)."""
    def side(hi: np.float32, lo: np.float32) -> float:
        return max(float(hi - lo) + 1, 0)

    inter = side(min(a[2], b[2]), max(a[0], b[0])) * side(min(a[3], b[3]), max(a[1], b[1]))
    union = side(a[2], a[0]) * side(a[3], a[1]) + side(b[2], b[0]) * side(b[3], b[1]) - inter
    return inter / union if union else 0


def kept_objects(detections: Sequence[Mapping[str, Any]], tag: str, options: ScoringOptions,
                 classes: set[str] | None = None) -> dict[str, list[Kept]]:
    """Per class (all, or only ``classes``), the detections the official scorer keeps, best first."""
    threshold = options.counting_threshold if tag == "counting" else options.threshold
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for det in detections:
        if classes is None or det["class"] in classes:
            grouped.setdefault(det["class"], []).append(det)
    kept: dict[str, list[Kept]] = {}
    for name, dets in grouped.items():
        rows = np.array([[*d["box"], d["score"]] for d in dets], dtype=np.float32)
        order = np.argsort(rows[:, 4])[::-1]
        order = order[rows[order, 4] > threshold]
        queue = order[:options.max_objects].tolist()
        chosen = []
        while queue:
            best = queue.pop(0)
            chosen.append(Kept(rows[best], dets[best].get("color")))
            if options.max_overlap != 1:
                queue = [j for j in queue if _iou(rows[best], rows[j]) < options.max_overlap]
        if chosen:
            kept[name] = chosen
    return kept


def relations(a: np.ndarray, b: np.ndarray, margin: float) -> list[str]:
    """Where box ``a`` lies relative to box ``b`` (float32 rows), discounting ``margin`` x both sizes."""
    boxes = np.array([a, b])[:, :4].reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - margin * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return []
    dx, dy = revised / np.linalg.norm(offset)
    found = {"left of": dx < -0.5, "right of": dx > 0.5, "above": dy < -0.5, "below": dy > 0.5}
    return [name for name in RELATIONS if found[name]]


def decide(metadata: Mapping[str, Any], objects: dict[str, list[Kept]], options: ScoringOptions) -> Verdict:
    """The verdict from the kept objects (:func:`kept_objects`) of at least the classes the metadata names."""
    correct = True
    reasons: list[str] = []
    groups: list[list[Kept] | None] = []
    for req in metadata.get("include", []):
        name, count = req["class"], req["count"]
        found = objects.get(name, [])[:count]
        matched = len(found) >= count
        if not matched:
            reasons.append(f"expected {name}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colors = [_color_of(obj, name) for obj in found]
                wanted = req["color"]
                if colors.count(wanted) < count:
                    matched = False
                    reasons.append(f"expected {wanted} {name}>={count}, found {colors.count(wanted)} {wanted}; and "
                                   + ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors))
            if "position" in req and matched:
                relation, target = req["position"]
                if groups[target] is None:
                    matched = False
                    reasons.append(f"no target for {name} to be {relation}")
                else:
                    matched = _check_position(found, groups[target], name, relation, options, reasons)
        correct = correct and matched
        groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        name = req["class"]
        if len(objects.get(name, [])) >= req["count"]:
            correct = False
            reasons.append(f"expected {name}<{req['count']}, found {len(objects[name])}")
    return Verdict(correct, "\n".join(reasons))


def _check_position(found: list[Kept], targets: list[Kept], name: str, relation: str, options: ScoringOptions,
                    reasons: list[str]) -> bool:
    """Every found object must stand in ``relation`` to every target object; the first failure is reported."""
    for obj in found:
        for target in targets:
            actual = relations(obj.row, target.row, options.position_threshold)
            if relation not in actual:
                reasons.append(f"expected {name} {relation} target, found {' and '.join(actual)} target")
                return False
    return True


def _color_of(obj: Kept, name: str) -> str:
    if obj.color is None:
        raise LinaBenchError(f"a {name} detection needed for a colour check has no colour; run the detect stage "
                             "with a colour classifier (or give 'color' in the detections)")
    return obj.color


def _mentioned(metadata: Mapping[str, Any]) -> set[str]:
    return {req["class"] for clause in ("include", "exclude") for req in metadata.get(clause, [])}


def score_image(metadata: dict, detections: list[dict], options: dict | None = None) -> tuple[bool, str]:
    """GenEval's (correct, reason) for one image, exactly as the official scorer gives it.

    ``metadata`` is one line of ``evaluation_metadata.jsonl``; each detection is ``{"class": <GenEval
    object name>, "score": float, "box": [x1, y1, x2, y2], "color": <colour name> | None}``; ``options``
    overrides ``threshold``, ``counting_threshold``, ``max_objects``, ``max_overlap`` and
    ``position_threshold`` (official names and defaults).
    """
    check_metadata(metadata)
    check_detections(detections)
    parsed = ScoringOptions.parse(options)
    verdict = decide(metadata, kept_objects(detections, metadata["tag"], parsed, _mentioned(metadata)), parsed)
    return verdict.correct, verdict.reason
