"""GenEval (djghosh13/geneval) with the official semantics: generate, detect, score.

``score_image(metadata, detections, options=None) -> (correct, reason)`` is the contract that
external checks call; see :mod:`.scoring`. The stages are :func:`.generate.generate_images`,
:func:`.detect.detect_folder` and :func:`.results.score_folder`; :mod:`.pipeline` chains them.
"""

from lina_bench.evaluators.geneval.scoring import COLORS, ScoringOptions, score_image

__all__ = ["COLORS", "ScoringOptions", "score_image"]
