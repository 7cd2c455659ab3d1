"""How the predictions of a prediction file compare with the dataset's labels: pixels of each kind of reading."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierseg.evaluation.reading import KINDS
from hierseg.evaluation.sections import COUNT, TEXT, Field, Section
from hierseg.evaluation.tally import Tally


@dataclass(frozen=True)
class Comparison:
    space: str
    pixels: int  # evaluated pixels
    kinds: dict[str, int]  # pixels of each kind (hierseg.evaluation.reading.KINDS)

    def sections(self) -> tuple[Section, ...]:
        total = max(self.pixels, 1)
        return (Section(
            "comparison", "predictions against the labels",
            ((Field("space", "predictions in", TEXT), self.space),
             (Field("pixels", "evaluated pixels", COUNT), self.pixels)),
            (Field("kind", "kind", TEXT), Field("pixels", "pixels", COUNT), Field("fraction", "% of pixels")),
            tuple((kind, self.kinds[kind], self.kinds[kind] / total) for kind in KINDS),
            note="each prediction is read as the dataset's label whose extent holds its concept: equal or finer, right "
                 "where the truth is that label; coarser or outside, no label holds it; not_comparable, no concept "
                 "(void or ignore values: misses, as the official Cityscapes evaluation counts them)"),)


def comparison(tally: Tally) -> Comparison:
    """Evaluated pixels by the kind of their prediction's reading."""
    per_kind = np.bincount(tally.reading.kinds, weights=tally.counts.sum(0), minlength=len(KINDS))
    return Comparison(tally.reading.space, int(tally.counts.sum()), dict(zip(KINDS, map(int, per_kind), strict=True)))
