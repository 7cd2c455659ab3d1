"""DSSPN: Dynamic-Structured Semantic Propagation Network (Liang, Zhou and Xing, CVPR 2018).

Build path: timm backbone (output stride 8) -> transition Q (ASPP, three 3x3 branches at rates 6/12/18, m0 = 256)
-> :class:`~hierseg.models.neuron_head.NeuronHead`, one dense semantic-enhanced block per neuron of the tree: every
concept with at least two children, and every concept a dataset labels while the tree continues below it (those
get a *self* output, "this concept itself", so that a dataset's coarse or nested labels can be predicted).

Training (3.3-3.5): each image activates the neurons on the paths to its labelled concepts; a neuron runs once per
batch on exactly the images that activate it; each neuron learns a cross-entropy over the outputs the batch's dataset
defines (concept mask, 3.4), on labels subsampled to the feature resolution (4.1). ``classifier="sigmoid"`` (the
default of hierseg 0.2 and earlier) learns a per-output binary cross-entropy instead: softmax was ahead on Cityscapes and
Mapillary over two seeds (``bench/universal_bench.md``, issue 24).

Inference (:mod:`hierseg.models.topdown`): top-down from the root over the outputs the target dataset allows, by the
paper's greedy rule (the default) or the most probable path (``inference="path"``); with per-pixel loss weighting
greedy was ahead in 7 of 8 one-seed comparisons and even over two seeds (``bench/universal_bench.md``).

Variants (paper's ablations): ``m`` in {32, 48, 64}; ``dense=False`` (a neuron reads its parent's features only);
``combine="sum"`` (ancestor features summed instead of concatenated: the root features are first projected to m
channels by one shared 1x1 convolution so that the sum is defined); ``classifier="sigmoid"`` (binary cross-entropy per
output); ``structure="fixed"`` (every neuron the dataset supervises runs on every image). Training
choices measured in ``bench/universal_bench.py``: ``supervision`` (labels at the feature grid or logits upsampled
to the labels) and ``weighting`` (per-neuron means summed, or per-pixel sums averaged over supervised pixels).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from hierseg.core.errors import HiersegError
from hierseg.models.backbone import Backbone
from hierseg.models.base import Segmenter, variant_backbone
from hierseg.models.layers import ASPP, count_params
from hierseg.models.neuron_head import NeuronHead, head_parameter_count, subsample
from hierseg.models.registry import register_model
from hierseg.models.topdown import INFERENCE_RULES, PlanTensors, best_path, greedy
from hierseg.taxonomy.decisions import DecisionPlan, decision_plan
from hierseg.taxonomy.neurons import NeuronGraph, neuron_graph
from hierseg.taxonomy.tree import Taxonomy

__all__ = ["DSSPN", "NeuronHead", "dsspn_resnet18", "dsspn_resnet50", "dsspn_resnet101", "head_parameter_count",
           "subsample"]


class DSSPN(Segmenter):
    """DSSPN on a timm backbone; see the module docstring."""

    def __init__(self, taxonomy: Taxonomy | None = None, backbone: str = "resnet101", backbone_weights: str | None = None,
                 frozen_bn: bool = False, output_stride: int = 8, m0: int = 256, m: int = 48, dense: bool = True,
                 combine: Literal["concat", "sum"] = "concat", classifier: Literal["sigmoid", "softmax"] = "softmax",
                 structure: Literal["dynamic", "fixed"] = "dynamic", memory_efficient: bool = True,
                 inference: Literal["greedy", "path"] = "greedy", supervision: Literal["feature", "full"] = "feature",
                 weighting: Literal["pixel", "neuron"] = "pixel") -> None:
        super().__init__()
        for name, value, allowed in (("structure", structure, ("dynamic", "fixed")),
                                     ("inference", inference, INFERENCE_RULES),
                                     ("supervision", supervision, ("feature", "full")),
                                     ("weighting", weighting, ("pixel", "neuron"))):
            if value not in allowed:
                raise HiersegError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")
        self.graph = neuron_graph(taxonomy)
        self.structure, self.inference, self.supervision, self.weighting = structure, inference, supervision, weighting
        self.backbone = Backbone(backbone, output_stride, (4,), backbone_weights, frozen_bn)
        self.transition = ASPP(self.backbone.channels[-1], m0, (6, 12, 18))
        self.head = NeuronHead(self.graph, m0, m, dense, combine, classifier, memory_efficient)
        self._plans: dict[str | None, DecisionPlan] = {}
        self._plan_tensors: dict[tuple[str | None, str], PlanTensors] = {}

    @property
    def label_spaces(self) -> tuple[str, ...]:
        return self.graph.taxonomy.datasets

    def recorded_kwargs(self) -> dict[str, Any]:
        return {"classifier": self.head.classifier}  # hierseg 0.2's files do not name it: sigmoid

    def root_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.transition(self.backbone(image)[-1])

    # -- training -------------------------------------------------------------------------------------------------
    def head_loss(self, h0: torch.Tensor, label: torch.Tensor, dataset: str) -> dict[str, torch.Tensor]:
        """The head's loss for root features ``h0`` and full-resolution labels of ``dataset``."""
        self._check_dataset(dataset)
        loss, prop = self.head.loss(h0, label, dataset, self.structure, self.supervision, self.weighting)
        return {"loss": loss, "neurons": torch.tensor(float(len(prop.rows)))}

    def forward(self, image: torch.Tensor, label: torch.Tensor, dataset: str | None = None) -> dict[str, torch.Tensor]:
        if dataset is None:
            raise HiersegError("DSSPN needs the dataset of a labelled batch (its ids and concept mask)")
        return self.head_loss(self.root_features(image), label, dataset)

    def _check_dataset(self, dataset: str | None) -> None:
        if dataset is not None and dataset not in self.label_spaces:
            raise HiersegError(f"dataset {dataset!r} is not in the model's taxonomy ({', '.join(self.label_spaces)})")

    # -- inference ------------------------------------------------------------------------------------------------
    def plan(self, dataset: str | None = None) -> DecisionPlan:
        """Where top-down inference into ``dataset`` (None: the tree) may go (:mod:`hierseg.taxonomy.decisions`)."""
        self._check_dataset(dataset)
        if dataset not in self._plans:
            self._plans[dataset] = decision_plan(self.graph, dataset)
        return self._plans[dataset]

    @torch.no_grad()
    def infer(self, h0: torch.Tensor, size: tuple[int, int], dataset: str | None = None,
              rule: str | None = None, plan: PlanTensors | None = None) -> torch.Tensor:
        """Per-pixel concept indices (into ``graph.concepts``) at ``size`` by top-down hierarchical inference.

        ``rule`` (default: the model's ``inference``): ``"greedy"`` follows each neuron's most probable allowed
        output (the paper); ``"path"`` picks, per pixel, the label whose decisions have the highest summed
        log-probability. ``plan``: another plan's tables (a held-out dataset's, :mod:`hierseg.engine.zero_shot`)
        instead of ``dataset``'s.
        """
        rule = rule or self.inference
        if rule not in INFERENCE_RULES:
            raise HiersegError(f"inference must be one of {', '.join(map(repr, INFERENCE_RULES))}, not {rule!r}")
        infer = greedy if rule == "greedy" else best_path
        return infer(self.head, h0, tuple(size), plan if plan is not None else self._plan_on(dataset, h0.device))

    def _plan_on(self, dataset: str | None, device: torch.device) -> PlanTensors:
        key = (dataset, str(device))
        if key not in self._plan_tensors:
            self._plan_tensors[key] = PlanTensors.of(self.plan(dataset), device)
        return self._plan_tensors[key]

    @property
    def taxonomy(self) -> Taxonomy:
        return self.graph.taxonomy

    @property
    def decision_graph(self) -> NeuronGraph:
        return self.graph

    @torch.no_grad()
    def decide(self, image: torch.Tensor, plan: DecisionPlan) -> torch.Tensor:
        key = (f"plan:{id(plan)}", str(image.device))
        if self._plan_tensors.get(key, None) is None or self._plan_tensors[key].plan is not plan:
            self._plan_tensors[key] = PlanTensors.of(plan, image.device)
        return self.infer(self.root_features(image), image.shape[-2:], plan=self._plan_tensors[key])

    @torch.no_grad()
    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        """``(B, H, W)`` ids of ``dataset`` (its ignore id where no label applies), or tree concept indices."""
        concepts = self.infer(self.root_features(image), image.shape[-2:], dataset)
        return self._plan_on(dataset, concepts.device).label[concepts]

    def describe(self, dataset: str | None = None) -> dict[str, Any]:
        """Parameter counts, the neuron graph's size, and what ``dataset`` supervises."""
        info: dict[str, Any] = {
            **super().describe(dataset), "concepts": len(self.graph.concepts), "neurons": len(self.graph),
            "max_depth": self.graph.taxonomy.max_depth, "self_outputs": sum(n.has_self for n in self.graph.neurons),
            "neuron_params": count_params(self.head), "transition_params": count_params(self.transition),
            "m0": self.head.m0, "m": self.head.m, "structure": self.structure, "inference": self.inference}
        if dataset is not None:
            self._check_dataset(dataset)
            info["dataset_neurons"] = int(self.graph.mask(dataset).active.sum())
            info["unpredictable_labels"] = list(self.plan(dataset).unpredictable(self.graph))
        return info


def _create_dsspn(variant: str, **kwargs: Any) -> DSSPN:
    """DSSPN as registered variant ``variant`` names it (its backbone); ``kwargs`` override, ``backbone`` too."""
    return DSSPN(**{"backbone": variant_backbone(variant), **kwargs})


@register_model
def dsspn_resnet18(**kwargs: Any) -> DSSPN:
    """DSSPN on ResNet-18 (for CPU runs and the demo)."""
    return _create_dsspn("dsspn_resnet18", **kwargs)


@register_model
def dsspn_resnet50(**kwargs: Any) -> DSSPN:
    """DSSPN on ResNet-50 (paper Table 6)."""
    return _create_dsspn("dsspn_resnet50", **kwargs)


@register_model
def dsspn_resnet101(**kwargs: Any) -> DSSPN:
    """DSSPN on ResNet-101, the paper's main model."""
    return _create_dsspn("dsspn_resnet101", **kwargs)
