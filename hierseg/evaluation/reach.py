"""What a model cannot say in a dataset it is projected into (zero-shot evaluation through the tree).

A label none of whose extent the model outputs (:mod:`hierseg.taxonomy.projection`) can never be predicted: its
pixels are misses whatever the image. The section lists those of the evaluated labels, with the reason, and gives
mIoU twice, labelled: over every evaluated label (the report's ``mIoU``, what a benchmark scores) and over the
reachable ones alone (what the model could get right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierseg.evaluation.metrics import Metrics, nanmean
from hierseg.evaluation.sections import COUNT, TEXT, Field, Section
from hierseg.taxonomy.projection import Reach, Unreachable


@dataclass(frozen=True)
class ReachScore:
    rule: str  # the projection rule: sum or argmax
    evaluated: int  # evaluated labels
    unreachable: tuple[Unreachable, ...]  # evaluated labels the model cannot output
    miou_all: float
    miou_reachable: float

    def sections(self) -> tuple[Section, ...]:
        return (Section(
            "reach", f"labels the model can reach (projection: {self.rule})",
            ((Field("miou_all", "mIoU over all evaluated labels"), self.miou_all),
             (Field("miou_reachable", "mIoU over reachable labels"), self.miou_reachable),
             (Field("reachable", "reachable", COUNT), self.evaluated - len(self.unreachable)),
             (Field("unreachable", "unreachable", COUNT), len(self.unreachable)),
             (Field("projection", "projection", TEXT), self.rule)),
            (Field("id", "id", COUNT), Field("name", "unreachable label", TEXT), Field("concept", "concept", TEXT),
             Field("reason", "why", TEXT)),
            tuple((u.id, u.name, u.concept, u.reason) for u in self.unreachable),
            scalars={"mIoU_reachable": self.miou_reachable},
            note="unreachable: the model never outputs a concept of the label's extent; its pixels always count as misses"),)


def reach_score(metrics: Metrics, reach: Reach, rule: str) -> ReachScore:
    """The reach section of ``metrics`` (one dataset's flat scores) for ``reach`` (the projection's)."""
    lost = {u.id: u for u in reach.unreachable}
    unreachable = tuple(lost[c.id] for c in metrics.classes if c.id in lost)
    iou = np.array([c.iou for c in metrics.classes if c.id not in lost], dtype=float)
    return ReachScore(rule, len(metrics.classes), unreachable, metrics.miou, nanmean(iou))
