"""DSSPN: Dynamic-Structured Semantic Propagation Network (Liang, Zhou and Xing, CVPR 2018).

Build path: timm backbone (output stride 8) -> transition Q (ASPP, three 3x3 branches at rates 6/12/18, m0 = 256)
-> :class:`NeuronHead`, one :class:`~hierseg.models.dense_block.NeuronBlock` per concept with at least two children.

Training (3.3-3.5): each image activates the neurons on the paths to its labelled concepts; a neuron runs once per
batch on exactly the images that activate it (rows gathered from its ancestors' outputs), so shared neurons run on
the whole batch and no Python loop runs over images. Each neuron is trained with a per-child binary cross-entropy
against the child on the path to the pixel's concept, restricted to the children the batch's dataset defines
(concept mask, 3.4), on labels subsampled to the feature resolution (4.1).

Inference (3.3): top-down from the root; each pixel follows its most probable (defined) child until it reaches a
leaf or, for a named dataset, a concept that dataset labels; only neurons some pixel reaches are run.

Variants (paper's ablations): ``m`` in {32, 48, 64}; ``dense=False`` (a neuron reads its parent's features only);
``combine="sum"`` (ancestor features summed instead of concatenated: the root features are first projected to m
channels by one shared 1x1 convolution so that the sum is defined); ``classifier="softmax"`` (cross-entropy over
the defined children); ``structure="fixed"`` (every neuron the dataset supervises runs on every image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hierseg.models.aspp import ASPP
from hierseg.models.backbone import Backbone
from hierseg.models.dense_block import NeuronBlock, Rows, as_rows, gather
from hierseg.models.outputs import neuron_graph
from hierseg.models.registry import register_model
from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.neurons import IGNORE_INDEX, NeuronGraph
from hierseg.taxonomy.subgraph import activated_batch

NEGATIVE = -1e4  # logit of a masked child: far below any real logit, finite so that 0 * it stays 0


def feature_rows(size: int, out: int) -> np.ndarray:
    """Label rows (or columns) sampled at the feature positions: 513 -> 65 picks every 8th pixel (paper 4.1)."""
    return np.round(np.linspace(0, size - 1, out)).astype(np.int64)


@dataclass
class Propagation:
    """What one pass over the activated sub-graph produced, per neuron index."""

    rows: dict[int, np.ndarray] = field(default_factory=dict)  # images (batch indices) each neuron ran on
    logits: dict[int, torch.Tensor] = field(default_factory=dict)  # (len(rows), children, h, w)
    features: dict[int, torch.Tensor] = field(default_factory=dict)  # (len(rows), m, h, w)


class NeuronHead(nn.Module):
    """The semantic neuron graph over root features ``h0`` (``(B, m0, h, w)``)."""

    def __init__(self, graph: NeuronGraph, m0: int = 256, m: int = 48, dense: bool = True,
                 combine: Literal["concat", "sum"] = "concat", classifier: Literal["sigmoid", "softmax"] = "sigmoid",
                 memory_efficient: bool = True) -> None:
        super().__init__()
        if combine not in ("concat", "sum"):
            raise HiersegError(f"combine must be 'concat' or 'sum', not {combine!r}")
        if classifier not in ("sigmoid", "softmax"):
            raise HiersegError(f"classifier must be 'sigmoid' or 'softmax', not {classifier!r}")
        self.graph = graph
        self.m0, self.m, self.dense, self.combine, self.classifier = m0, m, dense, combine, classifier
        self.root_projection = nn.Conv2d(m0, m, 1) if combine == "sum" else None
        self.neurons = nn.ModuleList(
            NeuronBlock(self.in_channels(n.index), m, len(n.children), memory_efficient and combine == "concat")
            for n in graph.neurons)
        self._device_tables: dict[tuple[str, str], torch.Tensor] = {}

    def in_channels(self, neuron: int) -> int:
        ancestors = len(self.graph.neurons[neuron].ancestors)
        if self.combine == "sum":
            return self.m
        if not self.dense:
            return self.m if ancestors else self.m0
        return self.m0 + self.m * ancestors

    def _inputs(self, neuron: int, h0: torch.Tensor, prop: Propagation, rows: np.ndarray,
                positions: dict[int, np.ndarray]) -> tuple[list[torch.Tensor], list[Rows]]:
        """The neuron's input tensors and, per input, which of its rows belong to ``rows`` (None: all)."""
        ancestors = self.graph.neurons[neuron].ancestors
        sources = list(ancestors) if self.dense else list(ancestors[-1:])
        inputs: list[torch.Tensor] = []
        picks: list[Rows] = []
        if self.dense or not sources:
            inputs.append(h0)
            picks.append(as_rows(rows, h0.shape[0], h0.device))
        for a in sources:
            # rows are a subset of the ancestor's, so picking all of its rows means the same set
            inputs.append(prop.features[a])
            picks.append(as_rows(positions[a][rows], len(prop.rows[a]), h0.device))
        return inputs, picks

    def root(self, h0: torch.Tensor) -> torch.Tensor:
        """What the neurons read as root features: ``h0``, or its m-channel projection in the sum variant."""
        return self.root_projection(h0) if self.root_projection is not None else h0

    def run(self, n: int, root: torch.Tensor, prop: Propagation, rows: np.ndarray,
            positions: dict[int, np.ndarray]) -> torch.Tensor:
        """Run neuron ``n`` on batch ``rows`` (its ancestors already ran on supersets); record and return logits."""
        inputs, picks = self._inputs(n, root, prop, rows, positions)
        block = self.neurons[n]
        if self.combine == "sum":
            x = sum(gather(f, r) for f, r in zip(inputs, picks, strict=True))
            h = F.relu(block.conv(F.relu(block.reduce(x))))
            logits = block.predict(h)
        else:
            h, logits = block(inputs, picks)
        prop.rows[n], prop.features[n] = rows, h
        pos = np.full(root.shape[0], -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        positions[n] = pos
        return logits

    def propagate(self, h0: torch.Tensor, active: np.ndarray) -> Propagation:
        """Run every neuron on the images that activate it (``active``: ``(B, neurons)`` bool), in depth order."""
        prop = Propagation()
        positions: dict[int, np.ndarray] = {}
        root = self.root(h0)
        for n in np.flatnonzero(active.any(axis=0)):
            prop.logits[int(n)] = self.run(int(n), root, prop, np.flatnonzero(active[:, n]), positions)
        return prop

    def defined(self, dataset: str, device: torch.device) -> torch.Tensor:
        """``(neurons, max_children)`` bool: children the dataset defines (the concept mask), on ``device``."""
        key = (dataset, str(device))
        if key not in self._device_tables:
            self._device_tables[key] = torch.as_tensor(self.graph.mask(dataset).matrix(self.graph.max_children),
                                                       device=device)
        return self._device_tables[key]

    def neuron_losses(self, prop: Propagation, targets: torch.Tensor, neurons: list[int],
                      dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Per activated neuron: the summed per-pixel loss and the number of supervised pixels.

        ``targets``: ``(len(neurons), B, h, w)`` uint8 child targets of those neurons.
        """
        sums, counts = [], []
        for k, n in enumerate(neurons):
            logits = prop.logits[n].float()
            children = logits.shape[1]
            rows = torch.as_tensor(prop.rows[n], device=logits.device)
            target = targets[k].index_select(0, rows).long()
            valid = target != IGNORE_INDEX
            defined = self.defined(dataset, logits.device)[n, :children]
            if self.classifier == "sigmoid":
                onehot = (target.unsqueeze(1) == torch.arange(children, device=logits.device).view(1, -1, 1, 1))
                bce = F.binary_cross_entropy_with_logits(logits, onehot.to(logits.dtype), reduction="none")
                per_pixel = (bce * defined.view(1, -1, 1, 1)).sum(1)
            else:
                masked = logits.masked_fill(~defined.view(1, -1, 1, 1), NEGATIVE)
                per_pixel = F.cross_entropy(masked, target.masked_fill(~valid, 0), reduction="none")
            sums.append((per_pixel * valid).sum())
            counts.append(valid.sum())
        if not sums:
            return torch.zeros(0), torch.zeros(0)
        return torch.stack(sums), torch.stack(counts)

    def activation(self, dataset: str, small_label: torch.Tensor, structure: str = "dynamic") -> np.ndarray:
        """``(B, neurons)`` bool: the neurons each image runs (its sub-graph, or the dataset's fixed structure)."""
        if structure == "fixed":
            return np.repeat(self.graph.mask(dataset).active[None], small_label.shape[0], axis=0)
        return activated_batch(self.graph, dataset, small_label).matrix

    def loss(self, h0: torch.Tensor, label: torch.Tensor, dataset: str,
             structure: str = "dynamic") -> tuple[torch.Tensor, Propagation]:
        """Sum over the activated neurons of each neuron's mean per-pixel loss (labels at full resolution)."""
        small = subsample(label, h0.shape[-2:])
        prop = self.propagate(h0, self.activation(dataset, small, structure))
        neurons = sorted(prop.rows)
        if not neurons:  # nothing labelled in the batch: a zero loss that still backpropagates
            return h0.sum() * 0, prop
        targets = self.graph.targets(dataset, small, neurons)
        sums, counts = self.neuron_losses(prop, targets, neurons, dataset)
        return (sums / counts.clamp(min=1)).sum(), prop

    def decide(self, logits: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Most probable allowed child per pixel and its probability (per-child sigmoid, or softmax)."""
        masked = logits.float().masked_fill(~allowed.view(1, -1, 1, 1), float("-inf"))
        probs = torch.sigmoid(masked) if self.classifier == "sigmoid" else torch.softmax(masked, 1)
        best, choice = probs.max(1)
        return choice, best


class DSSPN(nn.Module):
    """DSSPN on a timm backbone; see the module docstring. Follows :mod:`hierseg.models.base`'s contract."""

    def __init__(self, taxonomy: Any = None, backbone: str = "resnet101", backbone_weights: str | None = None,
                 frozen_bn: bool = False, output_stride: int = 8, m0: int = 256, m: int = 48, dense: bool = True,
                 combine: Literal["concat", "sum"] = "concat", classifier: Literal["sigmoid", "softmax"] = "sigmoid",
                 structure: Literal["dynamic", "fixed"] = "dynamic", memory_efficient: bool = True) -> None:
        super().__init__()
        if structure not in ("dynamic", "fixed"):
            raise HiersegError(f"structure must be 'dynamic' or 'fixed', not {structure!r}")
        self.graph = neuron_graph(taxonomy)
        self.structure = structure
        self.backbone = Backbone(backbone, output_stride, (4,), backbone_weights, frozen_bn)
        self.transition = ASPP(self.backbone.channels[-1], m0, (6, 12, 18))
        self.head = NeuronHead(self.graph, m0, m, dense, combine, classifier, memory_efficient)
        self._inference: dict[str | None, dict[str, torch.Tensor]] = {}

    @property
    def label_spaces(self) -> tuple[str, ...]:
        return self.graph.taxonomy.datasets

    def root_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.transition(self.backbone(image)[-1])

    # -- training -------------------------------------------------------------------------------------------------
    def head_loss(self, h0: torch.Tensor, label: torch.Tensor, dataset: str) -> dict[str, torch.Tensor]:
        """The summed neuron losses for root features ``h0`` and full-resolution labels of ``dataset``."""
        if dataset not in self.label_spaces:
            raise HiersegError(f"dataset {dataset!r} is not in the model's taxonomy ({', '.join(self.label_spaces)})")
        loss, prop = self.head.loss(h0, label, dataset, self.structure)
        return {"loss": loss, "neurons": torch.tensor(float(len(prop.rows)))}

    def forward(self, image: torch.Tensor, label: torch.Tensor | None = None,
                dataset: str | None = None) -> dict[str, torch.Tensor]:
        h0 = self.root_features(image)
        if label is None:
            return {"concepts": self.infer(h0, image.shape[-2:], dataset)}
        if dataset is None:
            raise HiersegError("DSSPN needs the dataset of a labelled batch (its ids and concept mask)")
        return self.head_loss(h0, label, dataset)

    # -- inference ------------------------------------------------------------------------------------------------
    def _tables(self, dataset: str | None, device: torch.device) -> dict[str, torch.Tensor]:
        """Lookup tables for top-down inference, per target dataset (None: the whole tree)."""
        key = dataset
        if key not in self._inference:
            self._inference[key] = inference_tables(self.graph, dataset)
        return {k: v.to(device) for k, v in self._inference[key].items()}

    @torch.no_grad()
    def infer(self, h0: torch.Tensor, size: tuple[int, int], dataset: str | None = None) -> torch.Tensor:
        """Per-pixel concept indices (into ``graph.concepts``) at ``size`` by top-down hierarchical inference."""
        tables = self._tables(dataset, h0.device)
        batch = h0.shape[0]
        state = torch.full((batch, *size), int(tables["settle"][self.graph.concept_index[self.graph.taxonomy.root]]),
                           dtype=torch.long, device=h0.device)
        done = tables["stop"][state]
        prop = Propagation()
        positions: dict[int, np.ndarray] = {}
        root = self.head.root(h0)
        for neuron in self.graph.neurons:
            n = neuron.index
            here = (state == int(tables["concept"][n])) & ~done
            reached = here.flatten(1).any(1).cpu().numpy()
            if not reached.any():
                continue
            # Every image that reaches a neuron reached its ancestors, so their features cover these rows.
            rows = np.flatnonzero(reached)
            logits = self.head.run(n, root, prop, rows, positions)
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            allowed = tables["allowed"][n, : len(neuron.children)]
            choice, prob = self.head.decide(logits, allowed)
            index = torch.as_tensor(rows, device=h0.device)
            sub_here = here[index]
            nxt = tables["settle"][tables["children"][n][choice]]
            if bool(tables["nested"][n]):
                # The dataset labels this concept and some of its descendants: a pixel stays here unless a defined
                # child is more likely than not.
                stay = sub_here & (prob < 0.5)
                done[index] |= stay
                sub_here &= ~stay
            state[index] = torch.where(sub_here, nxt, state[index])
            done[index] |= sub_here & tables["stop"][nxt]
        return state

    @torch.no_grad()
    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        """``(B, H, W)`` ids of ``dataset`` (its ignore id where no label applies), or tree concept indices."""
        concepts = self.infer(self.root_features(image), image.shape[-2:], dataset)
        if dataset is None:
            return concepts
        return self._tables(dataset, concepts.device)["dataset_id"][concepts]

    def structure_info(self, dataset: str | None = None) -> dict[str, Any]:
        """Figures for ``hierseg models info``: the neuron graph's size, and what ``dataset`` supervises."""
        info: dict[str, Any] = {
            "concepts": len(self.graph.concepts), "neurons": len(self.graph), "max_depth": self.graph.taxonomy.max_depth,
            "neuron_params": count_params(self.head), "transition_params": count_params(self.transition),
            "m0": self.head.m0, "m": self.head.m, "structure": self.structure}
        if dataset is not None:
            if dataset not in self.label_spaces:
                raise HiersegError(f"dataset {dataset!r} is not in the model's taxonomy ({', '.join(self.label_spaces)})")
            info["dataset_neurons"] = int(self.graph.mask(dataset).active.sum())
        return info

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        backbone = list(self.backbone.parameters())
        ids = {id(p) for p in backbone}
        return {"backbone": backbone, "head": [p for p in self.parameters() if id(p) not in ids]}


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def subsample(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Labels at the feature positions (nearest sampling, no averaging of ids)."""
    h, w = label.shape[-2:]
    rows = torch.as_tensor(feature_rows(h, size[0]), device=label.device)
    cols = torch.as_tensor(feature_rows(w, size[1]), device=label.device)
    return label.index_select(-2, rows).index_select(-1, cols)


def inference_tables(graph: NeuronGraph, dataset: str | None) -> dict[str, torch.Tensor]:
    """Tables over concept indices and neurons that drive :meth:`DSSPN.infer` for one target dataset.

    - ``settle[c]``: where a pixel placed at ``c`` comes to rest before the next decision: down chains of
      single-child concepts (no neuron decides there), unless the dataset labels ``c`` itself;
    - ``stop[c]``: a pixel at ``c`` is finished (a leaf, or for a dataset a labelled concept with no defined child);
    - ``allowed[n]``: children neuron ``n`` may choose (the dataset's concept mask, or all);
    - ``nested[n]``: the dataset labels neuron ``n``'s concept and also concepts below it;
    - ``children[n]``: concept indices of the neuron's children; ``concept[n]``: its own concept index;
    - ``dataset_id[c]``: the dataset's id for concept ``c`` (its ignore id where it has none).
    """
    tax = graph.taxonomy
    idx = graph.concept_index
    labelled: set[str] = set()
    ignore = 0
    dataset_id = np.zeros(len(graph.concepts), dtype=np.int64)
    if dataset is not None:
        space = graph.space(dataset)
        ignore = space.ignore
        dataset_id[:] = ignore
        for value, concept in space.concepts.items():
            if concept is not None:
                labelled.add(concept)
                dataset_id[idx[concept]] = value
        mask = graph.mask(dataset)
        allowed = mask.matrix(graph.max_children)
    else:
        allowed = np.zeros((len(graph), graph.max_children), dtype=bool)
        for n in graph.neurons:
            allowed[n.index, : len(n.children)] = True
    settle = np.arange(len(graph.concepts), dtype=np.int64)
    for c in graph.concepts:
        cur = c
        while len(tax.children(cur)) == 1 and cur not in labelled:
            cur = tax.children(cur)[0]
        settle[idx[c]] = idx[cur]
    stop = np.zeros(len(graph.concepts), dtype=bool)
    for c in graph.concepts:
        if tax.is_leaf(c):
            stop[idx[c]] = True
        elif c in labelled:
            n = graph.index.get(c)
            stop[idx[c]] = n is None or not allowed[n].any()
    nested = np.array([n.concept in labelled and bool(allowed[n.index].any()) for n in graph.neurons], dtype=bool)
    children = np.zeros((len(graph), graph.max_children), dtype=np.int64)
    for n in graph.neurons:
        children[n.index, : len(n.children)] = [idx[c] for c in n.children]
    concept = np.array([idx[n.concept] for n in graph.neurons], dtype=np.int64)
    return {name: torch.as_tensor(value) for name, value in dict(
        settle=settle, stop=stop, allowed=allowed, nested=nested, children=children, concept=concept,
        dataset_id=dataset_id).items()}


def head_parameter_count(graph: NeuronGraph, m0: int = 256, m: int = 48, dense: bool = True,
                         combine: str = "concat") -> int:
    """Parameters of the neuron graph, from the tree alone: per neuron, Conv1x1(in, 4m) + Conv3x3(4m, m) +
    Conv1x1(m, children), with biases; ``in = m0 + m * ancestors`` for the dense block."""
    total = m0 * m + m if combine == "sum" else 0
    for n in graph.neurons:
        depth = len(n.ancestors)
        cin = m if combine == "sum" else (m0 + m * depth if dense else (m if depth else m0))
        total += cin * 4 * m + 4 * m + 4 * m * m * 9 + m + m * len(n.children) + len(n.children)
    return total


def _dsspn(backbone: str, **kwargs: Any) -> DSSPN:
    return DSSPN(**{"backbone": backbone, **kwargs})


@register_model
def dsspn_resnet18(**kwargs: Any) -> DSSPN:
    """DSSPN on ResNet-18 (for CPU runs and the demo)."""
    return _dsspn("resnet18", **kwargs)


@register_model
def dsspn_resnet50(**kwargs: Any) -> DSSPN:
    """DSSPN on ResNet-50 (paper Table 6)."""
    return _dsspn("resnet50", **kwargs)


@register_model
def dsspn_resnet101(**kwargs: Any) -> DSSPN:
    """DSSPN on ResNet-101, the paper's main model."""
    return _dsspn("resnet101", **kwargs)
