"""A universal model's outputs in the ids of another dataset, through the tree: zero-shot evaluation and prediction.

:class:`Projection` is built from the model and a tree that covers the target dataset (the checkpoint's own, or a
superset of it from ``taxonomy build --add``; :func:`hierseg.taxonomy.projection.check_superset`). Two rules:

- ``sum`` (the default on a dataset the model never trained on): a flat model's probability of a target label is
  the sum of the probabilities of its outputs whose concept lies in the label's extent (MSeg's 0/1 matrix, derived
  from the tree: :func:`hierseg.taxonomy.projection.output_values`), then argmax over the labels the model can
  reach. DSSPN decides top-down, by the model's greedy or path rule, over the target's plan read through extents
  (:func:`hierseg.taxonomy.decisions.extent_plan`): only the choices that lead into some label's extent, and no
  decision once every concept below belongs to one label.
- ``argmax``: the model's answer in the tree (argmax over all outputs; DSSPN's tree-space decisions), then the
  label whose extent holds that concept, or none (the target's ignore value, a miss). What ``predict --dataset
  tree`` followed by ``labels translate`` gives.

A target whose spec names a background value (VOC, PASCAL-Context) takes every concept none of its labels holds as
background, under both rules.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.engine.distributed import unwrap
from hierseg.models.base import Segmenter
from hierseg.taxonomy.decisions import decision_plan, extent_plan
from hierseg.taxonomy.labelspace import LabelSpace, label_space
from hierseg.taxonomy.projection import (
    Reach,
    background_of,
    check_superset,
    output_values,
    projection_matrix,
    reach,
    restrict,
)
from hierseg.taxonomy.tree import Taxonomy

PROJECTIONS = ("sum", "argmax")
log = logging.getLogger(__name__)


def model_taxonomy(model: Segmenter | nn.Module) -> Taxonomy | None:
    """The tree whose concepts ``model``'s outputs are, or None (raw classes, or a model built on no tree)."""
    module: Segmenter = unwrap(model)
    return None if module.raw_classes is not None else module.taxonomy


def evaluation_tree(model: Segmenter | nn.Module, taxonomy: Taxonomy | None = None) -> Taxonomy | None:
    """The tree evaluation and prediction read ``model``'s datasets in: the model's own (``model.taxonomy``), or
    ``taxonomy``, the one legitimate second tree: a superset of the model's that adds datasets (zero-shot,
    ``--taxonomy EXTENDED.json``), checked to be one here. None: a model built on no tree, given none."""
    own = unwrap(model).taxonomy
    if taxonomy is None or taxonomy is own:
        return own
    outputs = model_taxonomy(model)
    if outputs is not None:
        check_superset(outputs, taxonomy)
    return taxonomy


class Projection:
    """How ``model`` (trained on its own tree) predicts ``dataset`` of ``taxonomy`` under ``rule``; see the module
    docstring. :attr:`reach` lists the labels it can never output."""

    def __init__(self, model: Segmenter | nn.Module, dataset: str, taxonomy: Taxonomy, rule: str = "sum") -> None:
        if rule not in PROJECTIONS:
            raise HiersegError(f"projection must be one of {', '.join(PROJECTIONS)}, not {rule!r}")
        tree = model_taxonomy(model)
        if tree is None:
            raise HiersegError("this checkpoint predicts raw class indices; only a model built on the tree can be "
                               "projected into another dataset")
        check_superset(tree, taxonomy)
        if dataset not in taxonomy.datasets:
            raise HiersegError(f"dataset {dataset!r} is in neither the checkpoint's tree nor this one (it covers "
                               f"{', '.join(taxonomy.datasets)})")
        self.model, self.dataset, self.rule, self.taxonomy = model, dataset, rule, taxonomy
        self.space: LabelSpace = label_space(taxonomy, dataset)
        self.background = background_of(taxonomy, dataset)
        self.ignore = self.space.ignore
        self._tensors: dict[tuple[str, str], torch.Tensor] = {}
        concepts = self._flat_concepts(model)
        if concepts is not None:
            values = output_values(taxonomy, self.space, concepts, self.background)
            produced = values[values >= 0]
            self.labels = np.array(sorted(set(produced.tolist())), dtype=np.int64)  # the values the sum can give
            self._matrix = projection_matrix(values, self.labels)  # (labels, outputs): MSeg's 0/1 matrix
            self._kept = np.flatnonzero(values >= 0)  # outputs in some label's extent, and the row each adds to
            self._rows = np.searchsorted(self.labels, values[self._kept])
            self._lut = np.where(values >= 0, values, self.ignore)  # output -> value (argmax rule)
            self.flat = True
        else:
            self.flat = False
            self._dsspn(model, tree)
            produced = self._produced
        self.reach: Reach = reach(tree, self.space, produced)
        if not self.reach.reachable:
            first = self.reach.unreachable[0]
            raise HiersegError(f"dataset {dataset!r}: none of its labels is reachable by this model (first: "
                               f"{first.name!r}, concept {first.concept!r}: {first.reason})")
        if self.reach.unreachable:
            log.debug("%s: %d of %d labels unreachable", dataset, len(self.reach.unreachable), len(self.reach.labels))

    @staticmethod
    def _flat_concepts(model: Segmenter) -> tuple[str, ...] | None:
        concepts = model.output_concepts
        if concepts is None and model.decision_graph is None:
            raise HiersegError(f"{type(model).__name__} has neither tree outputs nor a decision plan; it cannot be "
                               "projected into another dataset")
        return concepts

    def _dsspn(self, model: Segmenter, tree: Taxonomy) -> None:
        graph = model.decision_graph
        owner_values = output_values(self.taxonomy, self.space, graph.concepts, self.background)
        # concept index (model tree) -> target value, for a tree-space answer
        self._concept_lut = np.where(owner_values >= 0, owner_values, self.ignore)
        if self.rule == "sum":
            self._plan = extent_plan(graph, restrict(self.space, tree), self.background)
            terminals = self._plan.terminals()
            self._produced = {int(v) for v in self._plan.label[terminals] if v != self.ignore}
        else:
            self._plan = decision_plan(graph)  # the tree's own: every output may be chosen
            terminals = self._plan.terminals()
            self._produced = {int(v) for v in self._concept_lut[terminals] if v != self.ignore}

    def _tensor(self, name: str, array: np.ndarray, device: torch.device) -> torch.Tensor:
        key = (name, str(device))
        if key not in self._tensors:
            self._tensors[key] = torch.tensor(array, device=device)
        return self._tensors[key]

    def decode(self, scores: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` target ids from a flat model's ``(B, outputs, H, W)`` logits or log-probabilities."""
        if self.rule == "argmax":
            return self._tensor("lut", self._lut, scores.device)[scores.argmax(1)]
        # The matrix product with the 0/1 matrix, as one scatter-add of the kept outputs into their label's row: a
        # pass over the outputs, not labels x outputs multiply-adds per pixel. Unnormalised probabilities: every
        # label's sum shares the softmax's denominator, which cannot change the argmax.
        scores = scores.float()
        probs = (scores - scores.amax(1, keepdim=True)).exp_()
        kept = self._tensor("kept", self._kept, scores.device)
        sums = probs.new_zeros(probs.shape[0], len(self.labels), *probs.shape[2:])
        sums.index_add_(1, self._tensor("rows", self._rows, scores.device), probs.index_select(1, kept))
        return self._tensor("labels", self.labels, scores.device)[sums.argmax(1)]

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` target ids for ``image``: a flat model's scores decoded, or DSSPN's plan followed."""
        if self.flat:
            return self.decode(self.model.class_scores(image))
        concepts = self.model.decide(image, self._plan)
        if self._plan.dataset is not None:  # the target's own plan: its label table
            return self._tensor("plan_labels", self._plan.label, image.device)[concepts]
        return self._tensor("concepts", self._concept_lut, image.device)[concepts]
