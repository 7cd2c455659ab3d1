"""Every score of one evaluation, from its :class:`~hierseg.evaluation.tally.Tally`, into one report.

:data:`METRICS` lists the scores every evaluation path computes (checkpoints, prediction files, and the training
hook's periodic validation); a path adds its own with ``extra=``. Adding a metric is a module that computes it
from a tally and describes it as sections, and its entry here; nothing that renders a report changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hierseg.evaluation.levels import level_scores
from hierseg.evaluation.metrics import EvalClasses, Metrics, compute_metrics
from hierseg.evaluation.report import Report
from hierseg.evaluation.severity import mistake_severity
from hierseg.evaluation.tally import Tally
from hierseg.taxonomy.tree import Taxonomy


def flat_metrics(tally: Tally) -> Metrics:
    return compute_metrics(tally.matrix, tally.classes)


METRICS: tuple[Callable[[Tally], Any], ...] = (flat_metrics, level_scores, mistake_severity)


def report_of(tally: Tally, split: str, images: int, seconds: float, settings: dict[str, Any] | None = None,
              extra: Sequence[Any] = ()) -> Report:
    """The report of ``tally``: every metric of :data:`METRICS` that applies (returns a score), then ``extra``."""
    scores = tuple(s for s in (metric(tally) for metric in METRICS) if s is not None)
    return Report(tally.classes.dataset, split, images, seconds, (*scores, *extra), dict(settings or {}))


def scalar_names(dataset: str, taxonomy: Taxonomy | None = None) -> list[str]:
    """Every scalar a report of ``dataset`` can have: those of one where every class is present, right on some
    pixels and wrong on others (a void prediction)."""
    taxonomy = taxonomy if taxonomy is not None else Taxonomy.load()
    classes = EvalClasses.of(dataset, taxonomy)
    counts = np.zeros((len(classes), len(classes.lut) + 1), dtype=np.int64)
    counts[np.arange(len(classes)), list(classes.ids)] = 1
    counts[:, -1] = 1
    return list(report_of(Tally.of_ids(classes, counts, taxonomy), "", 0, 0.0).scalars())
