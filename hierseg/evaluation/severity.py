"""How bad the mistakes are: how far up the tree a wrong prediction meets the truth (Bertinetto et al., "Making
Better Mistakes"), from a :class:`~hierseg.evaluation.tally.Tally`.

Over the evaluated pixels predicted wrong (scored as another class, or as none), with ``t`` the concept of the true
label and ``p`` the concept the prediction is read as (:mod:`hierseg.evaluation.reading`: a concept inside a
label's extent is that label's, a coarser one stays itself), the severity is ``depth(t) - depth(LCA(t, p))``: the
number of levels between the true concept and the lowest common ancestor of the two. 1 is a sibling (or a
prediction that stopped one level above the truth), ``depth(t)`` a prediction that shares nothing but the root; 0 is
a prediction below the true concept but in a label nested there (Cityscapes' bridge on a building pixel): the right
kind, the wrong granularity. A class or prediction without a concept (VOC's background; void or ignore values)
is a child of the root of its own. Reported: the mean, the distribution, and the fraction of wrong pixels whose
prediction lies in the subtree of the true concept's parent (exactly those of severity 0 or 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hierseg.evaluation.sections import COUNT, NUMBER, Field, Section
from hierseg.evaluation.tally import Tally

# Scalar names (``report.scalars()``) for which a lower value is better: the mistakes' mean severity, in levels.
LOWER_IS_BETTER = ("severity/mean",)


@dataclass(frozen=True)
class Severity:
    wrong: int  # evaluated pixels predicted wrong
    pixels: int  # evaluated pixels
    counts: tuple[int, ...]  # wrong pixels by severity 0 .. D

    @property
    def mean(self) -> float:
        return sum(s * n for s, n in enumerate(self.counts)) / self.wrong if self.wrong else math.nan

    @property
    def within_parent(self) -> float:
        """Fraction of the wrong pixels whose prediction is in the subtree of the true concept's parent."""
        return sum(self.counts[:2]) / self.wrong if self.wrong else math.nan

    def sections(self) -> tuple[Section, ...]:
        wrong = self.wrong or math.nan
        return (Section(
            "severity", "mistake severity",
            ((Field("mean", "mean levels to the common ancestor", NUMBER), self.mean),
             (Field("within_parent", "in the true parent's subtree"), self.within_parent),
             (Field("wrong", "wrong pixels", COUNT), self.wrong), (Field("pixels", "of pixels", COUNT), self.pixels)),
            (Field("levels", "levels", COUNT), Field("pixels", "wrong pixels", COUNT), Field("fraction", "% of wrong")),
            tuple((s, n, n / wrong) for s, n in enumerate(self.counts)),
            scalars={"severity/mean": self.mean, "severity/within_parent": self.within_parent},
            note="levels: from the true label's concept up to where it meets the prediction (1: a sibling; 0: a "
                 "label nested below the true one)"),)


def mistake_severity(tally: Tally) -> Severity | None:
    """The severity of the wrong pixels of ``tally``; ``None`` when no evaluated class has a concept."""
    if not tally.covered:
        return None
    truth, prediction = tally.nodes
    table, depths = tally.ancestors, tally.depths
    k = len(tally.classes)
    wrong = tally.reading.columns[None, :] != np.arange(k)[:, None]  # (K, codes)
    # the ancestors agree from the root down to the LCA and differ below it
    common = (table[truth][:, None, 1:] == table[prediction][None, :, 1:]).sum(-1)
    severity = (depths[truth][:, None] - common)[wrong]
    if severity.size and severity.min() < 0:  # a wrong prediction read as the true concept itself
        raise ValueError("a wrong prediction is read as the concept of its true class")
    counts = np.zeros(table.shape[1], dtype=np.int64)
    np.add.at(counts, severity, tally.counts[wrong])
    return Severity(int(counts.sum()), int(tally.counts.sum()), tuple(map(int, counts)))
