"""GenEval verdicts against the official scorer's own output on synthetic detections.

The fixture (tests/fixtures/geneval/official_scores.json, see its README) holds 707 cases made by
running djghosh13/geneval's evaluate_image() unchanged on synthetic detections: one random case per
real metadata line, random option sets, and hand-made edge cases (float32 thresholds, the per-class
cap, NMS at the IoU threshold, position margins, colour counts, exclusions, ties, empty lists).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lina_bench.api.errors import LinaBenchError
from lina_bench.evaluators.geneval import score_image
from lina_bench.evaluators.geneval.results import result_row
from lina_bench.evaluators.geneval.scoring import ScoringOptions

FIXTURE = Path(__file__).parent / "fixtures" / "geneval" / "official_scores.json"
CASES = json.loads(FIXTURE.read_text())["cases"]
TWO_RELATIONS = re.compile(r"found (\w+(?: of)?) and (\w+(?: of)?) target")


def normalise(reason: str) -> str:
    """The official reason joins two relations in Python set order (hash-seed dependent): sort them."""
    return TWO_RELATIONS.sub(lambda m: "found " + " and ".join(sorted(m.groups())) + " target", reason)


def test_fixture_covers_every_tag_both_ways():
    seen = {(c["metadata"]["tag"], c["correct"]) for c in CASES}
    tags = {c["metadata"]["tag"] for c in CASES}
    assert len(tags) == 6 and all((tag, ok) in seen for tag in tags for ok in (True, False))
    assert len(CASES) > 600


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_verdict_and_reason_match_official(case):
    correct, reason = score_image(case["metadata"], case["detections"], case["options"])
    assert correct == case["correct"]
    assert normalise(reason) == normalise(case["reason"])


def test_two_relation_reasons_occur_and_are_normalised():
    two = [c for c in CASES if TWO_RELATIONS.search(c["reason"])]
    assert two, "the fixture should exercise boxes in two relations at once"


def test_result_details_match_official():
    """The kept boxes per class (results.jsonl 'details') equal the official ones, as float32 values."""
    for case in CASES:
        row = result_row("x.png", case["metadata"], case["detections"], ScoringOptions.parse(case["options"]))
        assert json.loads(row["details"]) == case["details"], case["name"]
        assert row["correct"] == case["correct"]


@pytest.mark.parametrize("metadata, message", [
    ({"include": [{"class": "dog", "count": 1}], "prompt": "a dog"}, "missing field"),
    ({"tag": "single_object", "include": [{"class": "dog"}], "prompt": "a dog"}, "integer 'count'"),
    ({"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "teal"}], "prompt": "p"}, "colour 'teal'"),
    ({"tag": "position", "include": [{"class": "dog", "count": 1, "position": ["left of", 0]}], "prompt": "p"},
     "earlier include"),
    ({"tag": "position", "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1,
                                                                       "position": ["beside", 0]}], "prompt": "p"},
     "relation one of"),
    ("not a dict", "JSON object"),
])
def test_bad_metadata_is_refused(metadata, message):
    with pytest.raises(LinaBenchError, match=message):
        score_image(metadata, [])


@pytest.mark.parametrize("detections, message", [
    ([{"score": 0.5, "box": [0, 0, 1, 1]}], "'class'"),
    ([{"class": "dog", "score": float("nan"), "box": [0, 0, 1, 1]}], "finite"),
    ([{"class": "dog", "score": 0.5, "box": [0, 0, 1]}], "box"),
    ([{"class": "dog", "score": 0.5, "box": [0, 0, 1, 1], "color": "teal"}], "colour"),
    ({"class": "dog"}, "list"),
])
def test_bad_detections_are_refused(detections, message):
    with pytest.raises(LinaBenchError, match=message):
        score_image({"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "p"}, detections)


def test_options_are_checked():
    meta = {"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "p"}
    with pytest.raises(LinaBenchError, match="unknown GenEval scoring option.*'treshold'"):
        score_image(meta, [], {"treshold": 0.5})
    with pytest.raises(LinaBenchError, match="not a valid float"):
        score_image(meta, [], {"threshold": "high"})
    assert ScoringOptions.parse({"threshold": "0.5", "max_objects": "4"}) == ScoringOptions(threshold=0.5,
                                                                                            max_objects=4)


def test_colour_needed_but_missing_is_a_clear_error():
    meta = {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "red"}], "prompt": "a red dog"}
    with pytest.raises(LinaBenchError, match="no colour"):
        score_image(meta, [{"class": "dog", "score": 0.9, "box": [0, 0, 5, 5], "color": None}])
