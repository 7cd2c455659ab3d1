"""Moved to :mod:`hierseg.evaluation.metrics` (issue 22); kept so that imports written before the move still work."""

from hierseg.evaluation.metrics import (  # noqa: F401
    INNER,
    CategoryScore,
    ClassScore,
    ConfusionMatrix,
    EvalClass,
    EvalClasses,
    GroupScore,
    Metrics,
    category_scores,
    class_scores,
    compute_metrics,
    confusion_matrix,
    group_scores,
    nanmean,
)
