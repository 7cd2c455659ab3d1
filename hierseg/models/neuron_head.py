"""DSSPN's semantic neuron head (paper 3.1-3.5): one dense semantic-enhanced block per neuron of the tree, run on
the activated sub-graph of a batch (dynamic batching), and its concept-masked per-output binary cross-entropy.

A neuron runs once per batch on exactly the images that activate it (rows gathered from its ancestors' outputs),
so shared neurons run on the whole batch and no Python loop runs over images. Each neuron is trained with a
per-output binary cross-entropy against the output on the path to the pixel's concept (a child, or the neuron's
self output where the pixel's dataset stops at the neuron's concept), restricted to the outputs the batch's dataset
defines (concept mask, 3.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.models.dense_block import NeuronBlock, Rows, as_rows
from hierseg.taxonomy.neurons import IGNORE_INDEX, NeuronGraph
from hierseg.taxonomy.subgraph import activated_batch

NEGATIVE = -1e4  # logit of a masked output: far below any real logit, finite so that 0 * it stays 0


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
                 combine: Literal["concat", "sum"] = "concat", classifier: Literal["sigmoid", "softmax"] = "softmax",
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
            NeuronBlock(self.in_channels(n.index), m, len(n.outputs), memory_efficient and combine == "concat", combine)
            for n in graph.neurons)
        self._device_tables: dict[tuple[str, ...], torch.Tensor] = {}

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
        h, logits = self.neurons[n](inputs, picks)
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
        """``(neurons, max_outputs)`` bool: outputs the dataset defines (the concept mask), on ``device``."""
        return self._table(("defined", dataset), device,
                           lambda: self.graph.mask(dataset).matrix(self.graph.max_outputs))

    def supervised(self, dataset: str, device: torch.device) -> torch.Tensor:
        """``(values,)`` bool: label values whose pixels some neuron learns from."""
        return self._table(("supervised", dataset), device, lambda: self.graph.activation_table(dataset).any(1))

    def _table(self, key: tuple[str, str], device: torch.device, make: Any) -> torch.Tensor:
        full = (*key, str(device))
        if full not in self._device_tables:
            self._device_tables[full] = torch.as_tensor(make(), device=device)
        return self._device_tables[full]

    def neuron_losses(self, prop: Propagation, targets: torch.Tensor, neurons: list[int],
                      dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Per activated neuron: the summed per-pixel loss and the number of supervised pixels.

        ``targets``: ``(len(neurons), B, h, w)`` uint8 output targets of those neurons; logits at another size are
        resized to the targets' first (``supervision="full"``).
        """
        sums, counts = [], []
        for k, n in enumerate(neurons):
            logits = prop.logits[n].float()
            if logits.shape[-2:] != targets.shape[-2:]:
                logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
            outputs = logits.shape[1]
            rows = torch.as_tensor(prop.rows[n], device=logits.device)
            target = targets[k].index_select(0, rows).long()
            valid = target != IGNORE_INDEX
            defined = self.defined(dataset, logits.device)[n, :outputs]
            if self.classifier == "sigmoid":
                onehot = (target.unsqueeze(1) == torch.arange(outputs, device=logits.device).view(1, -1, 1, 1))
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

    def activation(self, dataset: str, label: torch.Tensor, structure: str = "dynamic") -> np.ndarray:
        """``(B, neurons)`` bool: the neurons each image runs (its sub-graph, or the dataset's fixed structure)."""
        if structure == "fixed":
            return np.repeat(self.graph.mask(dataset).active[None], label.shape[0], axis=0)
        return activated_batch(self.graph, dataset, label).matrix

    def loss(self, h0: torch.Tensor, label: torch.Tensor, dataset: str, structure: str = "dynamic",
             supervision: str = "feature", weighting: str = "pixel") -> tuple[torch.Tensor, Propagation]:
        """The head's loss for root features ``h0`` and full-resolution labels of ``dataset``.

        ``supervision``: labels sampled at the feature positions (``"feature"``, the paper) or logits upsampled to
        the labels (``"full"``). ``weighting``: every neuron's per-pixel losses summed and divided by the number of
        supervised pixels (``"pixel"``: each pixel weighs the same, as in a flat head's mean cross-entropy), or each
        activated neuron's mean per-pixel loss, summed over neurons (``"neuron"``: a neuron that sees three pixels
        of a batch pulls as hard as the root, which sees all of them; it trained markedly worse, see
        ``bench/universal_bench.md``).
        """
        small = subsample(label, h0.shape[-2:]) if supervision == "feature" else label
        prop = self.propagate(h0, self.activation(dataset, small, structure))
        neurons = sorted(prop.rows)
        if not neurons:  # nothing labelled in the batch: a zero loss that still backpropagates
            return h0.sum() * 0, prop
        targets = self.graph.targets(dataset, small, neurons)
        sums, counts = self.neuron_losses(prop, targets, neurons, dataset)
        if weighting == "pixel":
            pixels = self.supervised(dataset, small.device)[small.long()].sum()
            return sums.sum() / pixels.clamp(min=1), prop
        return (sums / counts.clamp(min=1)).sum(), prop

    def log_probs(self, logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Log-probability of each allowed output (``-inf`` for the others), normalised over the allowed ones.

        Sigmoid: each output's probability divided by their sum over the allowed outputs; softmax: a softmax over
        the allowed outputs. The argmax is the most probable allowed output either way.
        """
        logits = logits.float()
        scores = F.logsigmoid(logits) if self.classifier == "sigmoid" else logits
        scores = scores.masked_fill(~allowed.view(1, -1, 1, 1), float("-inf"))
        return scores - scores.logsumexp(1, keepdim=True)


def subsample(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Labels at the feature positions (nearest sampling, no averaging of ids)."""
    h, w = label.shape[-2:]
    rows = torch.as_tensor(feature_rows(h, size[0]), device=label.device)
    cols = torch.as_tensor(feature_rows(w, size[1]), device=label.device)
    return label.index_select(-2, rows).index_select(-1, cols)


def head_parameter_count(graph: NeuronGraph, m0: int = 256, m: int = 48, dense: bool = True,
                         combine: str = "concat") -> int:
    """Parameters of the neuron graph, from the tree alone: per neuron, Conv1x1(in, 4m) + Conv3x3(4m, m) +
    Conv1x1(m, outputs), with biases; ``in = m0 + m * ancestors`` for the dense block."""
    total = m0 * m + m if combine == "sum" else 0
    for n in graph.neurons:
        depth = len(n.ancestors)
        cin = m if combine == "sum" else (m0 + m * depth if dense else (m if depth else m0))
        total += cin * 4 * m + 4 * m + 4 * m * m * 9 + m + m * len(n.outputs) + len(n.outputs)
    return total
