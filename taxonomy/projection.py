"""Zero-shot projection through the tree: a model trained on one tree, scored in the ids of a dataset that only a
superset of that tree covers (an artifact of ``hierseg taxonomy build --add``), with no retraining.

The extended tree must keep every concept of the model's tree where it was (:func:`check_superset`); it may add
concepts and datasets. A model output stands for a concept of its tree (a leaf, a ``"<concept>/other"``, or a
single-dataset model's label); in the target dataset that concept lies in exactly one label's *extent* (the label's
concept and what lies below it, less the sub-extents the dataset labels apart), or in none: :func:`output_values`
is that table, the same reading :func:`hierseg.taxonomy.translate.owners` gives every translation. It is MSeg's
universal-to-test 0/1 matrix, derived instead of written by hand.

A target label none of whose extent the model can output is *unreachable* (:func:`reach`): its concept is one the
model's tree lacks (``--add`` created it), or the model's outputs in that branch stop above it, or the dataset
labels every part of it apart. Such a label is scored (it costs the model) but listed, and mIoU is also given over
the reachable labels alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.labelspace import LabelSpace
from hierseg.taxonomy.translate import owners
from hierseg.taxonomy.tree import Taxonomy

NEW = "its concept is not in the model's tree"
BELOW = "the model never outputs a concept of its extent"


def check_superset(model: Taxonomy, extended: Taxonomy) -> None:
    """Raise :class:`HiersegError` naming the first concept of ``model`` (artifact order) that ``extended`` lacks or
    puts under another parent. Same ids and parents make every output of the model mean the same there."""
    for concept in model:
        if concept.id not in extended:
            raise HiersegError(f"concept {concept.id!r} of the checkpoint's tree is missing; not a superset of it")
        parent = extended[concept.id].parent
        if parent != concept.parent:
            raise HiersegError(f"concept {concept.id!r} moved: under {concept.parent!r} in the checkpoint's tree, "
                               f"under {parent!r} here; not a superset of it")


def background_of(taxonomy: Taxonomy, dataset: str) -> int | None:
    """The id a dataset gives pixels of none of its classes (VOC's and PASCAL-Context's 0), if its spec names one."""
    value = taxonomy.artifact.get("datasets", {}).get(dataset, {}).get("background")
    return None if value is None else int(value)


def output_values(taxonomy: Taxonomy, space: LabelSpace, concepts: Sequence[str | None],
                  background: int | None = None) -> np.ndarray:
    """``(outputs,)`` int64: per model output (its concept in ``taxonomy``), the value of ``space`` whose extent
    holds it; ``background`` (or -1: no label) where none does."""
    owner = owners(taxonomy, space)
    empty = -1 if background is None else background
    return np.array([empty if c is None or owner.get(c) is None else owner[c] for c in concepts], dtype=np.int64)


def projection_matrix(values: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """``(len(labels), outputs)`` 0/1: row ``i`` marks the outputs whose probabilities sum to ``labels[i]``'s."""
    return (np.asarray(values)[None, :] == np.asarray(labels, dtype=np.int64)[:, None]).astype(np.float32)


def restrict(space: LabelSpace, model: Taxonomy) -> LabelSpace:
    """``space`` with the labels whose concept ``model`` lacks made concept-less: what a decision plan over the
    model's tree can aim at."""
    return replace(space, concepts={v: c if c is not None and c in model else None for v, c in space.concepts.items()})


@dataclass(frozen=True)
class Unreachable:
    id: int
    name: str
    concept: str
    reason: str


@dataclass(frozen=True)
class Reach:
    """Which of a dataset's labels a model can output at all under one projection rule."""

    dataset: str
    labels: tuple[int, ...]  # the values that carry a concept
    unreachable: tuple[Unreachable, ...]

    @property
    def reachable(self) -> tuple[int, ...]:
        lost = {u.id for u in self.unreachable}
        return tuple(v for v in self.labels if v not in lost)


def reach(model: Taxonomy, space: LabelSpace, produced: Iterable[int]) -> Reach:
    """The labels of ``space`` (on the extended tree) outside ``produced``, the values the projection can give."""
    produced = set(map(int, produced))
    labels = tuple(v for v, c in sorted(space.concepts.items()) if c is not None)
    lost = tuple(Unreachable(v, space.names[v], space.concepts[v], NEW if space.concepts[v] not in model else BELOW)
                 for v in labels if v not in produced)
    return Reach(space.name, labels, lost)
