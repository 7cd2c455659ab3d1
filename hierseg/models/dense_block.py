"""DSSPN's dense semantic-enhanced block (paper 3.2) and its memory-efficient input layer (3.6).

A neuron at depth d reads the root features and the m-channel outputs of its ancestors: ``m0 + m * d`` input
channels. Concatenating them for every neuron and keeping the concatenation for backward makes saved activations
grow quadratically with depth. :class:`GatherConcatConv` instead keeps only references to the ancestors' own output
tensors (which are stored anyway) plus the image rows to read from them, and rebuilds the concatenation in backward:
saved memory per neuron is its own output, so the total grows linearly with depth. Because the first layer is a 1x1
convolution, backward needs the concatenated input only for the weight gradient, so nothing is recomputed beyond
a copy.

Rows: in dynamic batching (3.5) a neuron runs on the subset of the batch that activates it; each input may hold a
superset of those images, and ``rows[i]`` picks the neuron's images out of input ``i`` (``None``: all of them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Rows = torch.Tensor | slice | None  # image rows to read: an index tensor, a contiguous range, or all


def gather(feature: torch.Tensor, rows: Rows) -> torch.Tensor:
    if rows is None or isinstance(rows, slice):
        return feature if rows is None else feature[rows]  # a view: no copy
    return feature[rows]


def scatter(feature: torch.Tensor, rows: Rows, grad: torch.Tensor) -> torch.Tensor:
    """Gradient of :func:`gather` with respect to ``feature``."""
    if rows is None:
        return grad
    out = torch.zeros_like(feature)
    if isinstance(rows, slice):
        out[rows] = grad
        return out
    return out.index_add_(0, rows, grad)


def as_rows(rows, size: int, device: torch.device) -> Rows:
    """``None`` when ``rows`` (sorted, unique) are all ``size`` rows, a slice when contiguous, else a tensor."""
    if len(rows) == size:
        return None
    if rows[-1] - rows[0] + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return torch.as_tensor(rows, device=device)


class GatherConcatConv(torch.autograd.Function):
    """``conv1x1(cat([f[rows] for f, rows in inputs]))`` that saves the inputs by reference, not the concatenation."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bias: torch.Tensor | None, rows: Sequence[Rows],
                *features: torch.Tensor) -> torch.Tensor:
        x = torch.cat([gather(f, r) for f, r in zip(features, rows, strict=True)], 1)
        if torch.is_autocast_enabled(x.device.type):
            # Under autocast the convolution below runs in the low-precision type; backward must match it.
            dtype = torch.get_autocast_dtype(x.device.type)
            x, w, b = x.to(dtype), weight.to(dtype), bias.to(dtype) if bias is not None else None
        else:
            w, b = weight.to(x.dtype), bias.to(x.dtype) if bias is not None else None
        ctx.rows = tuple(rows)
        ctx.splits = [f.shape[1] for f in features]
        ctx.compute_dtype = x.dtype
        ctx.has_bias = bias is not None
        ctx.save_for_backward(weight, *features)
        return F.conv2d(x, w, b)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        weight, *features = ctx.saved_tensors
        dtype = ctx.compute_dtype
        g = grad_out.to(dtype)
        grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            x = torch.cat([gather(f, r).to(dtype) for f, r in zip(features, ctx.rows, strict=True)], 1)
            # 1x1 convolution: dW = sum over images and pixels of g x^T
            grad_w = torch.matmul(g.flatten(2), x.flatten(2).transpose(1, 2)).sum(0)
            grad_w = grad_w.reshape(weight.shape).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[1]:
            grad_b = g.sum((0, 2, 3)).to(weight.dtype)
        grads: list[torch.Tensor | None] = [None] * len(features)
        if any(ctx.needs_input_grad[3:]):
            gx = F.conv2d(g, weight.to(dtype).transpose(0, 1))
            for i, (part, f, r) in enumerate(zip(gx.split(ctx.splits, 1), features, ctx.rows, strict=True)):
                if not ctx.needs_input_grad[3 + i]:
                    continue
                grads[i] = scatter(f, r, part.to(f.dtype))
        return (grad_w, grad_b, None, *grads)


class NeuronBlock(nn.Module):
    """One semantic neuron: ReLU-Conv1x1(4m)-ReLU-Conv3x3(m) on its inputs, then the 1x1 prediction layer.

    ``inputs`` are already rectified (the transition and every neuron end in a ReLU), so the leading ReLU of the
    paper's block is the identity here and is folded away. ``combine="sum"`` (an ablation) adds the inputs, all of
    them ``m`` channels wide, instead of concatenating them.
    """

    def __init__(self, in_channels: int, m: int, children: int, memory_efficient: bool = True,
                 combine: str = "concat") -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, 4 * m, 1)
        self.conv = nn.Conv2d(4 * m, m, 3, padding=1)
        self.predict = nn.Conv2d(m, children, 1)
        self.memory_efficient = memory_efficient
        self.combine = combine

    def features(self, inputs: Sequence[torch.Tensor], rows: Sequence[Rows]) -> torch.Tensor:
        if self.combine == "sum":
            x = self.reduce(sum(gather(f, r) for f, r in zip(inputs, rows, strict=True)))
        elif self.memory_efficient and torch.is_grad_enabled():
            x = GatherConcatConv.apply(self.reduce.weight, self.reduce.bias, tuple(rows), *inputs)
        else:
            x = self.reduce(torch.cat([gather(f, r) for f, r in zip(inputs, rows, strict=True)], 1))
        return F.relu(self.conv(F.relu(x)))

    def forward(self, inputs: Sequence[torch.Tensor],
                rows: Sequence[Rows]) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(inputs, rows)
        return h, self.predict(h)
