"""Moved to :mod:`hierseg.evaluation.score` (issue 22); kept so that imports written before the move still work."""

from hierseg.evaluation.score import Judge, match_predictions, score_predictions  # noqa: F401
