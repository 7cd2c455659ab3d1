"""mIoU at every level of the tree (HSSN's mIoU^l), from a :class:`~hierseg.evaluation.tally.Tally`.

At level ``d`` every ground-truth label and every prediction is replaced by its concept's ancestor at depth ``d``
(a concept shallower than ``d`` stays itself; a prediction is first read as the dataset reads it, so one inside a
label's extent is that label: :mod:`hierseg.evaluation.reading`). The level's concepts are those the dataset's
evaluated classes become; IoU is computed per such concept over the pixels the dataset evaluates, a prediction that
becomes no concept of the level counting as a miss and nobody's false positive, as in the flat confusion matrix;
the level's mIoU is the mean over the concepts present in the ground truth or the predictions. Levels run from 1 to
the tree's deepest level, where every concept stays itself, so there the mIoU is the flat mIoU.

With a tree whose depth-1 concepts are Cityscapes' seven categories, level 1 is the official category IoU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hierseg.evaluation.metrics import class_scores, nanmean
from hierseg.evaluation.sections import COUNT, TEXT, Field, Section
from hierseg.evaluation.tally import Tally


@dataclass(frozen=True)
class LevelScore:
    level: int
    concepts: tuple[str, ...]  # the level's concepts (tree order; a class without a concept as "(name)")
    iou: tuple[float, ...]  # per concept; NaN when it is in neither ground truth nor prediction
    pixels: tuple[int, ...]  # ground-truth pixels per concept

    @property
    def miou(self) -> float:
        return nanmean(np.array(self.iou))

    @property
    def present(self) -> int:
        return sum(1 for v in self.iou if not math.isnan(v))


@dataclass(frozen=True)
class LevelScores:
    levels: tuple[LevelScore, ...]

    def level(self, d: int) -> LevelScore:
        return self.levels[d - 1]

    def sections(self) -> tuple[Section, ...]:
        rows = tuple((s.level, len(s.concepts), s.present, s.miou) for s in self.levels)
        summary = Section(
            "levels", "mIoU at each level of the tree",
            columns=(Field("level", "level", COUNT), Field("concepts", "concepts", COUNT),
                     Field("present", "present", COUNT), Field("miou", "mIoU")),
            rows=rows, scalars={f"mIoU_level/{s.level}": s.miou for s in self.levels},
            note="level d: labels and predictions replaced by their concept's ancestor at depth d (shallower ones "
                 "stay); the deepest level is the flat mIoU")
        concepts = Section(
            "level_concepts", "IoU of each concept at each level",
            columns=(Field("level", "level", COUNT), Field("concept", "concept", TEXT), Field("iou", "IoU"),
                     Field("pixels", "pixels", COUNT)),
            rows=tuple((s.level, c, v, p) for s in self.levels for c, v, p in zip(s.concepts, s.iou, s.pixels,
                                                                                   strict=True)),
            detail=True)
        return summary, concepts


def level_scores(tally: Tally) -> LevelScores | None:
    """IoU per concept at each level ``1 .. D``; ``None`` when no evaluated class has a concept."""
    if not tally.covered:
        return None
    truth, prediction = tally.nodes
    table = tally.ancestors
    out = []
    for d in range(1, table.shape[1]):
        rows, cols = table[truth, d], table[prediction, d]
        concepts = np.unique(rows)  # sorted node ids: tree order, classes without a concept after
        r = np.searchsorted(concepts, rows)
        c = np.searchsorted(concepts, cols).clip(max=len(concepts) - 1)
        c = np.where(concepts[c] == cols, c, len(concepts))  # no concept of this level: the miss column
        matrix = np.zeros((len(concepts), len(concepts) + 1), dtype=np.int64)
        np.add.at(matrix, (r[:, None], c[None, :]), tally.counts)
        iou, _, pixels, _ = class_scores(matrix)
        out.append(LevelScore(d, tuple(tally.node_name(int(x)) for x in concepts), tuple(map(float, iou)),
                              tuple(map(int, pixels))))
    return LevelScores(tuple(out))
