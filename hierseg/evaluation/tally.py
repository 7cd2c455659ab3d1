"""The pixel counts every score is computed from: evaluated ground-truth class by prediction code.

Checkpoint evaluation counts a model's predictions in the dataset's own ids (:class:`~hierseg.evaluation.metrics.
ConfusionMatrix`); prediction files in any label space are counted by :mod:`hierseg.evaluation.score`. Either way
the result is a :class:`Tally`: the counts, the :class:`~hierseg.evaluation.reading.Reading` of each prediction
code, the classes and the tree. The flat confusion matrix, the per-level matrices and the mistakes' depths are all
views of it, so every score of one evaluation comes from the same pixels.

Nodes: the tree-aware scores compare the truth's concept with the prediction's at each depth. A class without a
concept (VOC's background) and a prediction without one (void, ignore) each count as a node of their own, a child
of the root that no other class or prediction shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hierseg.evaluation.metrics import EvalClasses
from hierseg.evaluation.reading import Reading, concept_indices, own_reading
from hierseg.taxonomy.tree import Taxonomy


@dataclass(frozen=True)
class Tally:
    classes: EvalClasses
    reading: Reading
    counts: np.ndarray  # (K, codes) int64: ground-truth class by prediction code
    taxonomy: Taxonomy

    def __post_init__(self) -> None:
        shape = (len(self.classes), len(self.reading))
        if self.counts.shape != shape:
            raise ValueError(f"counts are {self.counts.shape}, expected {shape} (classes x prediction codes)")

    @classmethod
    def of_ids(cls, classes: EvalClasses, counts: np.ndarray, taxonomy: Taxonomy) -> Tally:
        """Counts of predictions in the dataset's own ids (codes: the ids, then any other value)."""
        return cls(classes, own_reading(taxonomy, classes), np.asarray(counts, dtype=np.int64), taxonomy)

    @cached_property
    def matrix(self) -> np.ndarray:
        """The flat ``K x (K + 1)`` confusion matrix: columns are the class each code is scored as, K for none."""
        k = len(self.classes)
        out = np.zeros((k, k + 1), dtype=np.int64)
        np.add.at(out.T, self.reading.columns, self.counts.T)
        return out

    @cached_property
    def covered(self) -> bool:
        """Does any evaluated class have a concept (is the dataset in the tree)?"""
        return any(c.concept is not None for c in self.classes.classes)

    @cached_property
    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(truth, prediction)``: the node of each class and of each code (see the module docstring). Concepts
        are ``0 .. N - 1`` (tree order); a class without a concept is ``N + its index``; a prediction without one
        is ``N + K``, unless it is scored as a class without a concept (the dataset's own background id)."""
        n, k = len(self.taxonomy), len(self.classes)
        index = concept_indices(self.taxonomy)
        truth = np.array([index[c.concept] if c.concept is not None else n + i
                          for i, c in enumerate(self.classes.classes)], dtype=np.int64)
        columns, concepts = self.reading.columns, self.reading.concepts
        scored = np.minimum(columns, k - 1)
        own = (columns < k) & (truth[scored] >= n)  # scored as a class that has no concept
        prediction = np.where(concepts >= 0, concepts, np.where(own, truth[scored], n + k))
        return truth, prediction

    @cached_property
    def ancestors(self) -> np.ndarray:
        """``(nodes, D + 1)``: each node's ancestor at depth ``d`` (itself where it is shallower than ``d``), for
        ``d = 0 .. D``, D the tree's deepest level. Column ``D`` is the node itself."""
        n, k = len(self.taxonomy), len(self.classes)
        depth = max(self.taxonomy.max_depth, 1)
        index = concept_indices(self.taxonomy)
        table = np.empty((n + k + 1, depth + 1), dtype=np.int64)
        for concept, i in index.items():
            path = [index[c] for c in self.taxonomy.path(concept)]
            table[i] = path + [i] * (depth + 1 - len(path))
        table[n:, 0] = index[self.taxonomy.root]
        table[n:, 1:] = np.arange(n, n + k + 1)[:, None]
        return table

    @cached_property
    def depths(self) -> np.ndarray:
        """Depth of every node (the root 0; nodes without a concept 1)."""
        n = len(self.taxonomy)
        out = np.ones(n + len(self.classes) + 1, dtype=np.int64)
        out[:n] = [c.depth for c in self.taxonomy]
        return out

    def node_name(self, node: int) -> str:
        """A concept's id, or for a class without a concept its name in brackets."""
        n = len(self.taxonomy)
        if node < n:
            return self.taxonomy.artifact["concepts"][node]["id"]
        k = node - n
        return f"({self.classes.classes[k].name})" if k < len(self.classes) else "(no concept)"
