"""How each value of a prediction's label space reads in the dataset being scored: one rule for every space.

A prediction value names a concept of the tree (a dataset label's concept, or a tree concept), or none (void,
ignore). It is read as the dataset's label whose extent holds that concept: the deepest concept at or above it that
the dataset labels (:func:`hierseg.taxonomy.translate.owners`). It is right where the ground truth is that label,
and wrong everywhere else. The kinds of reading:

- ``equal``: the dataset labels that very concept (Cityscapes' building, from Cityscapes ids, another dataset or
  the tree: a tree prediction that rests at building, through DSSPN's self output or stopping there, says building);
- ``finer``: a concept below the label it is read as (Mapillary's lane marking, or the tree's, on Cityscapes' road);
- ``coarser``: a concept above some of the dataset's labels and below none (the tree's concept above car and
  truck, on Cityscapes): right for no label;
- ``outside``: a concept the dataset labels nothing at, above or below (a dog, on Cityscapes): right for no label;
- ``not_comparable``: no concept (void or ignore values): right for no label.

A value of the dataset's own ids is read as itself, so a label without a concept (VOC's background) is still
right where the truth is that label. Each value is also given the concept it is read as (the label's concept, or
its own where no label holds it), which the tree-aware scores (:mod:`hierseg.evaluation.levels`,
:mod:`hierseg.evaluation.severity`) compare with the truth's.

Translation (``hierseg labels remap``) answers another question, which dataset label a value certainly is, and
sends a tree ``building`` to Cityscapes' ignore (it may be a bridge); a prediction of building is a decision for
building, and is scored as one, so ground truth remapped to the tree scores 100 in tree space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.evaluation.metrics import EvalClasses
from hierseg.taxonomy.labelspace import TREE, label_space
from hierseg.taxonomy.translate import owners
from hierseg.taxonomy.tree import Taxonomy

KINDS = ("equal", "finer", "coarser", "outside", "not_comparable")
EQUAL, FINER, COARSER, OUTSIDE, NOT_COMPARABLE = range(len(KINDS))
OTHER = -1  # the value of the last code: any value the space does not define


@dataclass(frozen=True)
class Reading:
    """Per code (a prediction value, then one code for every other value): the value, the evaluated class it is
    scored as (K: none, a miss and nobody's false positive), the concept it is read as (index in the tree's
    order, -1: none) and its kind (index into :data:`KINDS`)."""

    UNDEFINED = np.iinfo(np.uint16).max  # in :meth:`codes`: a value the space does not define

    space: str
    values: np.ndarray
    columns: np.ndarray
    concepts: np.ndarray
    kinds: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def codes(self) -> np.ndarray:
        """Prediction value -> code (``uint16``), :attr:`UNDEFINED` for values the space does not define."""
        values = self.values[self.values != OTHER]
        table = np.full(max(int(values.max(initial=0)) + 1, 256), self.UNDEFINED, dtype=np.uint16)
        table[values] = np.flatnonzero(self.values != OTHER)
        return table


def concept_indices(taxonomy: Taxonomy) -> dict[str, int]:
    """Concept id -> index in the tree's order (its value in the ``tree`` label space)."""
    return {c.id: i for i, c in enumerate(taxonomy)}


def own_reading(taxonomy: Taxonomy, classes: EvalClasses) -> Reading:
    """The dataset's own ids ``0 .. len(classes.lut) - 1``, each read as itself, then the other code."""
    k, dataset = len(classes), classes.dataset
    index = concept_indices(taxonomy)
    covered = dataset in taxonomy.datasets
    values = np.arange(len(classes.lut) + 1, dtype=np.int64)
    values[-1] = OTHER
    columns = np.append(classes.lut, k)
    concepts = np.full(len(values), -1, dtype=np.int64)
    if covered:
        for value in range(len(classes.lut)):
            concept = taxonomy.concept_of(dataset, value)
            concepts[value] = -1 if concept is None else index[concept]
    kinds = np.where((concepts >= 0) | (columns < k), EQUAL, NOT_COMPARABLE)
    return Reading(dataset, values, columns, concepts, kinds)


def reading(taxonomy: Taxonomy, space: str, classes: EvalClasses) -> Reading:
    """The values of label space ``space`` (a dataset's ids or ``tree``) read in ``classes.dataset``."""
    dataset = classes.dataset
    if space == dataset:
        return own_reading(taxonomy, classes)
    if space != TREE and space not in taxonomy.datasets:
        raise HiersegError(f"unknown label space {space!r} for predictions; choose one of "
                           f"{', '.join([*taxonomy.datasets, TREE])}")
    if dataset not in taxonomy.datasets:
        raise HiersegError(f"{dataset} is not in the tree, so predictions in {space} cannot be judged against it")
    source, target = label_space(taxonomy, space), label_space(taxonomy, dataset)
    index = concept_indices(taxonomy)
    owner = owners(taxonomy, target)
    labelled_below = {a for c in target.concepts.values() if c is not None for a in taxonomy.ancestors(c)}
    k = len(classes)
    values, columns, concepts, kinds = [], [], [], []
    for value in (*source.ids, source.ignore):
        concept = source.concepts.get(value)
        label = owner[concept] if concept is not None else None
        if concept is None:
            read, kind = None, NOT_COMPARABLE
        elif label is not None:
            read = target.concepts[label]
            kind = EQUAL if read == concept else FINER
        else:
            read, kind = concept, COARSER if concept in labelled_below else OUTSIDE
        values.append(value)
        columns.append(int(classes.lut[label]) if label is not None and label < len(classes.lut) else k)
        concepts.append(-1 if read is None else index[read])
        kinds.append(kind)
    values.append(OTHER)
    columns.append(k)
    concepts.append(-1)
    kinds.append(NOT_COMPARABLE)
    return Reading(space, *(np.array(a, dtype=np.int64) for a in (values, columns, concepts, kinds)))
