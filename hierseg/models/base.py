"""The contract between models and the engine: :class:`Segmenter`, which every family implements.

The engine and the CLI know a model only through this class and the registry:

- ``label_spaces``: the datasets whose ids :meth:`~Segmenter.predict` can give (empty for raw-class models);
- ``forward(image, label, dataset)``: the loss terms ``{"loss": scalar, **named terms}`` for a label map
  (``(B, H, W)`` int64 in ``dataset``'s own ids, or class indices for raw-class models); training goes through
  ``forward`` so that DDP's hooks see it;
- ``predict(image, dataset)``: ``(B, H, W)`` int64 ids in ``dataset``'s label space, or without a dataset in
  :attr:`~Segmenter.default_space` (the tree's concept indices for a universal model);
- ``param_groups()``: ``{"backbone": [...], "head": [...]}``, pretrained and newly initialised parameters, for the
  two learning rates of the paper's schedule;
- ``describe(dataset)``: the figures ``hierseg models info`` reports;
- ``taxonomy``, ``output_concepts``, ``decision_graph`` and ``decide(image, plan)``: what zero-shot prediction into a
  dataset the model never trained on reads (:mod:`hierseg.engine.zero_shot`): the tree the model was built on,
  the concept each class score stands for (flat models), or the neuron graph whose decisions a plan drives (DSSPN).

A model with class scores (the flat families) also has ``class_scores(image)`` and ``decode(scores, dataset)``, so
that evaluation can average probabilities over windows and flips before deciding; DSSPN decides top-down inside
``predict`` and has none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from hierseg.models.backbone import Backbone, ResNetStages
from hierseg.models.layers import count_params, resize
from hierseg.models.outputs import DatasetClasses, LeafClasses, Outputs, RawClasses
from hierseg.taxonomy.decisions import DecisionPlan
from hierseg.taxonomy.labelspace import TREE
from hierseg.taxonomy.neurons import NeuronGraph
from hierseg.taxonomy.tree import Taxonomy

CLASSES = "classes"  # the label space of a raw-class model given no dataset: its class indices


def variant_backbone(variant: str) -> str:
    """The backbone a registered variant is named after: ``deeplab_resnet101`` -> ``resnet101``."""
    return variant.split("_", 1)[1]


class Segmenter(nn.Module, ABC):
    """A segmentation model as the engine sees it; see the module docstring."""

    @property
    @abstractmethod
    def label_spaces(self) -> tuple[str, ...]:
        """Datasets whose ids :meth:`predict` can give (empty: raw class indices only)."""

    @property
    def default_space(self) -> str:
        """What :meth:`predict` gives without a dataset: ``"tree"`` (concept indices), ``"classes"`` (raw class
        indices) or the one dataset a single-dataset model predicts."""
        return TREE

    @property
    def raw_classes(self) -> int | None:
        """The number of raw classes of a model whose default space is ``"classes"``; None otherwise."""
        return None

    @property
    def has_class_scores(self) -> bool:
        """Whether :meth:`class_scores` and :meth:`decode` exist (score averaging over windows and flips)."""
        return False

    @abstractmethod
    def forward(self, image: torch.Tensor, label: torch.Tensor, dataset: str | None = None) -> dict[str, torch.Tensor]:
        """The loss terms for ``label``: ``{"loss": scalar, **named terms}``."""

    @abstractmethod
    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        """``(B, H, W)`` int64 ids of ``dataset``, or of :attr:`default_space` without one."""

    def class_scores(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` class scores at the image's size (models with :attr:`has_class_scores`)."""
        raise NotImplementedError(f"{type(self).__name__} predicts labels only; it has no class scores")

    def recorded_kwargs(self) -> dict[str, Any]:
        """Arguments a checkpoint records even where they were left at their default: those whose default changed
        once, so that a file keeps its meaning when the default moves (see ``hierseg.engine.checkpoint``)."""
        return {}

    @property
    def taxonomy(self) -> Taxonomy | None:
        """The tree the model was built on: its outputs are this tree's concepts, and evaluation reads its datasets'
        labels in it (a raw-class model: the tree it was given, or None; check :attr:`raw_classes` before reading
        concepts from it)."""
        return None

    @property
    def output_concepts(self) -> tuple[str, ...] | None:
        """The concept each of :meth:`class_scores`' channels stands for, in :attr:`taxonomy` (None: not a flat model
        on the tree)."""
        return None

    @property
    def decision_graph(self) -> NeuronGraph | None:
        """The neuron graph whose top-down decisions :meth:`decide` follows (None: the model decides no plan)."""
        return None

    def decide(self, image: torch.Tensor, plan: DecisionPlan) -> torch.Tensor:
        """``(B, H, W)`` concept indices (into ``decision_graph.concepts``) by top-down decisions under ``plan``."""
        raise NotImplementedError(f"{type(self).__name__} follows no decision plan")

    def decode(self, scores: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        """Ids of ``dataset`` (or :attr:`default_space`) from :meth:`class_scores`-shaped log-probabilities."""
        raise NotImplementedError(f"{type(self).__name__} predicts labels only; it has no class scores")

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``backbone``: the parameters under ``self.backbone``; ``head``: every other one."""
        backbone = [p for n, p in self.named_parameters() if n.startswith("backbone.")]
        head = [p for n, p in self.named_parameters() if not n.startswith("backbone.")]
        return {"backbone": backbone, "head": head}

    def describe(self, dataset: str | None = None) -> dict[str, Any]:
        """Figures for ``hierseg models info``: the backbone and parameter counts (families add their own)."""
        info: dict[str, Any] = {}
        backbone = getattr(self, "backbone", None)
        if isinstance(backbone, Backbone | ResNetStages):
            info.update(backbone=backbone.name, output_stride=backbone.output_stride, weights=backbone.weights.source)
        groups = self.param_groups()
        info["params"] = count_params(self)
        info["backbone_params"] = count_params(groups["backbone"])
        info["head_params"] = count_params(groups["head"])
        return info


class FlatSegmenter(Segmenter):
    """Base of the flat models: subclasses define :meth:`scores`; losses and decoding come from ``outputs``."""

    def __init__(self, outputs: Outputs) -> None:
        super().__init__()
        self.outputs = outputs

    @property
    def label_spaces(self) -> tuple[str, ...]:
        return self.outputs.datasets

    @property
    def default_space(self) -> str:
        if isinstance(self.outputs, RawClasses):
            return CLASSES
        if isinstance(self.outputs, DatasetClasses):
            return self.outputs.dataset
        return TREE

    @property
    def raw_classes(self) -> int | None:
        return self.outputs.num_outputs if isinstance(self.outputs, RawClasses) else None

    @property
    def taxonomy(self) -> Taxonomy | None:
        return self.outputs.taxonomy

    @property
    def output_concepts(self) -> tuple[str, ...] | None:
        if isinstance(self.outputs, LeafClasses):
            return self.outputs.concepts
        if isinstance(self.outputs, DatasetClasses):  # each output is one of the dataset's labels
            return tuple(self.outputs.space.concepts[int(v)] for v in self.outputs.ids)
        return None

    @property
    def has_class_scores(self) -> bool:
        return True

    def scores(self, image: torch.Tensor) -> list[tuple[str, torch.Tensor, float]]:
        """``[(name, logits, weight), ...]``: the main prediction first, then auxiliary (deeply supervised) ones.

        In eval mode only the main one is needed.
        """
        raise NotImplementedError

    def loss_terms(self, image: torch.Tensor, label: torch.Tensor, dataset: str | None) -> dict[str, torch.Tensor]:
        terms = {f"loss_{name}": w * self.outputs.loss(logits, label, dataset) for name, logits, w in self.scores(image)}
        return {"loss": torch.stack(list(terms.values())).sum(), **terms}

    def forward(self, image: torch.Tensor, label: torch.Tensor, dataset: str | None = None) -> dict[str, torch.Tensor]:
        return self.loss_terms(image, label, dataset)

    def class_scores(self, image: torch.Tensor) -> torch.Tensor:
        return resize(self.scores(image)[0][1], image.shape[-2:])

    def decode(self, scores: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        return self.outputs.decode(scores, dataset)

    @torch.no_grad()
    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        return self.decode(self.class_scores(image), dataset)

    def family_figures(self) -> dict[str, Any]:
        """A family's own figures for :meth:`describe` (PDN: its Table 1 weight count)."""
        return {}

    def describe(self, dataset: str | None = None) -> dict[str, Any]:
        return {**super().describe(dataset), **self.family_figures(), "outputs": self.outputs.num_outputs,
                "label_spaces": ",".join(self.label_spaces) or "raw classes"}
