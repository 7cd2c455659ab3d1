"""PDN: Progressively Diffused Networks (Zhang et al., Pattern Recognition 2019).

A *diffusion module* is ``layers`` stacked diffusion layers. Each layer holds one depth LSTM and ``E`` spatial
LSTMs (``E = 1``: 8 neighbours, ``E = 2``: 24), all convolutional LSTMs. Every LSTM reads the ``E + 1`` hidden maps
of the previous layer (depth maps ``H^d`` and spatial maps ``H^s_1 .. H^s_E``) through the paper's special atrous
filters (Fig. 3c, Eq. 1): the filter on ``H^d`` learns only the kernel centre, the filter on ``H^s_e`` only the ring
of ``8e`` sites at (chessboard) distance ``e``; everything else in the kernel is fixed at zero. So a site receives,
from each neighbour at distance ``e``, what that neighbour's spatial LSTM ``e`` prepared for distance-``e``
neighbours, and from itself what the depth LSTM kept. The first layer's hidden maps are all copies of the CNN
features; memory cells start at zero. After each layer a 1x1 score layer on the depth maps gives an auxiliary
prediction (intermediate supervision, Sec. 3).

Parameter count (Table 1). The filters are channel-wise (depthwise): hidden channel ``k`` of a gate sees only
channel ``k`` of each input map, which is what makes the count linear in ``d``. Per gate and channel the centre tap
plus the rings give ``1 + sum_{e=1..E} 8e = (2E + 1)^2`` weights (9 for 8 neighbours, 25 for 24), i.e. exactly one
weight per site of a ``(2E+1) x (2E+1)`` kernel, each site assigned to the input map its chessboard distance names.
Hence, without biases,

- per LSTM: 4 gates x (2E+1)^2 x d  -> 36d (8NB), 100d (24NB);
- per module: layers x (E + 1) LSTMs x 4 x (2E+1)^2 x d  -> 4 x 2 x 36d = 288d, 4 x 3 x 100d = 1200d,

which :meth:`DiffusionModule.weight_count` reports from the real parameters (73,728 and 307,200 for d = 256).

Choices where the paper is silent or inconsistent:

- Eq. (1) prints sigmoid for the cell input and tanh for the output gate; we use the standard LSTM (sigmoid i, f,
  o; tanh candidate), which Eq. (3) and LG-LSTM assume.
- The module is inserted "with residual connections" at d = 256 inside a 2048-channel stage: a 1x1 conv+BN+ReLU
  reduces to ``channels``, and a 1x1 conv+BN (BN scale zero-initialised, so an inserted module starts as the
  identity and keeps the pretrained stage intact) expands the last depth maps back and adds them to the input.
  These projections and the score layers lie outside the Table 1 count.
- Placement: module 1 between blocks 5b and 5c (``layer4[-2]`` and ``layer4[-1]``; before the last block for
  resnet18); with ``modules=2`` the second one (applied first) sits between stages 4 and 5 (after ``layer3``).
- The final classifier on 5c is DeepLab-v2's ASPP (3x3 convs at rates 6, 12, 18, 24 summed), the baseline the
  paper builds on; auxiliary score layers are 1x1 convs with weight ``aux_weight`` (1.0) each.
- Initialisation: all diffusion-layer parameters from N(0, 0.01) (variance, paper Sec. 5), biases included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.models.backbone import ResNetStages
from hierseg.models.base import FlatSegmenter, variant_backbone
from hierseg.models.layers import conv_bn_relu
from hierseg.models.outputs import make_outputs
from hierseg.models.registry import register_model
from hierseg.taxonomy.tree import Taxonomy

GATES = 4  # input, forget, candidate, output
NEIGHBOURS = {8: 1, 24: 2}  # neighbours per site -> spatial LSTMs per layer (E); 4E(E+1) neighbours in general


def table1_weight_count(channels: int, spatial: int, layers: int = 4) -> int:
    """Table 1's "total parameter of the module": ``layers x (E+1) x 4 x (2E+1)^2 x d`` (biases not counted)."""
    return layers * (spatial + 1) * GATES * (2 * spatial + 1) ** 2 * channels


def site_groups(spatial: int) -> torch.Tensor:
    """``(E+1, 2E+1, 2E+1)`` 0/1 masks: group 0 is the kernel centre, group ``e`` the ring at chessboard distance e."""
    r = torch.arange(-spatial, spatial + 1)
    distance = torch.maximum(r.abs()[:, None], r.abs()[None, :])
    return torch.stack([(distance == e).float() for e in range(spatial + 1)])


PAPER_DATASETS = ("ade20k",)  # without num_classes or datasets: the paper's scene-parsing benchmark (Table 4)


class DiffusionLayer(nn.Module):
    """One depth LSTM and ``spatial`` spatial LSTMs, all gates of all of them computed by one grouped convolution.

    The learnable kernel holds one weight per site of a ``(2E+1)^2`` window for every (channel, LSTM, gate); the
    fixed ``site_groups`` mask routes each site to the hidden map its distance selects (centre -> depth maps,
    ring e -> spatial maps e), so the parameter has exactly the Table 1 number of entries and none is dead.
    """

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        self.channels, self.spatial = channels, spatial
        self.lstms = spatial + 1  # index 0: depth LSTM, e: spatial LSTM e
        size = 2 * spatial + 1
        self.weight = nn.Parameter(torch.empty(channels * self.lstms * GATES, 1, size, size))
        self.bias = nn.Parameter(torch.empty(channels * self.lstms * GATES))
        self.register_buffer("sites", site_groups(spatial)[None], persistent=False)  # (1, E+1 inputs, K, K)
        nn.init.normal_(self.weight, std=0.1)  # variance 0.01 (paper Sec. 5)
        nn.init.normal_(self.bias, std=0.1)

    def kernel(self) -> torch.Tensor:
        """The dense ``(d * (E+1) * 4, E+1, K, K)`` grouped-conv kernel, zero off each input's centre/ring."""
        return self.weight * self.sites

    def forward(self, hidden: Sequence[torch.Tensor],
                memory: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``hidden``/``memory``: ``E+1`` maps ``(B, d, H, W)`` each, depth first; returns the next ones."""
        b, d, h, w = hidden[0].shape
        # Channel-major stacking puts the E+1 inputs of channel k in conv group k.
        x = torch.stack(list(hidden), 2).reshape(b, d * self.lstms, h, w)
        gates = F.conv2d(x, self.kernel(), self.bias, padding=self.spatial, groups=d)
        gates = gates.view(b, d, self.lstms, GATES, h, w)
        new_hidden, new_memory = [], []
        for n in range(self.lstms):
            i, f, c, o = gates[:, :, n].unbind(2)
            m = torch.sigmoid(f) * memory[n] + torch.sigmoid(i) * torch.tanh(c)
            new_memory.append(m)
            new_hidden.append(torch.sigmoid(o) * torch.tanh(m))
        return new_hidden, new_memory


class DiffusionModule(nn.Module):
    """``layers`` stacked :class:`DiffusionLayer`; returns the depth hidden maps of every layer, first to last."""

    def __init__(self, channels: int = 256, spatial: int = 2, layers: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DiffusionLayer(channels, spatial) for _ in range(layers))
        self.spatial = spatial

    def weight_count(self) -> int:
        """Weights of the LSTM filters without biases: Table 1's ``288d`` (8NB) or ``1200d`` (24NB) for 4 layers."""
        return sum(layer.weight.numel() for layer in self.layers)

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        hidden = [features] * (self.spatial + 1)  # every LSTM of layer 1 reads copies of the CNN features
        memory = [torch.zeros_like(features)] * (self.spatial + 1)
        depth = []
        for layer in self.layers:
            hidden, memory = layer(hidden, memory)
            depth.append(hidden[0])
        return depth


class DiffusionBlock(nn.Module):
    """A diffusion module inserted residually into a backbone stage of ``in_channels`` channels."""

    def __init__(self, in_channels: int, channels: int, spatial: int, layers: int) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(in_channels, channels, 1)
        self.module = DiffusionModule(channels, spatial, layers)
        self.expand = nn.Sequential(nn.Conv2d(channels, in_channels, 1, bias=False), nn.BatchNorm2d(in_channels))
        nn.init.zeros_(self.expand[1].weight)  # identity at start: the pretrained stage is left undisturbed

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        depth = self.module(self.reduce(x))
        return F.relu(x + self.expand(depth[-1])), depth


class ASPPClassifier(nn.Module):
    """DeepLab-v2's classifier: parallel 3x3 atrous convolutions straight to the scores, summed."""

    def __init__(self, in_channels: int, num_outputs: int, rates: tuple[int, ...] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_outputs, 3, padding=r, dilation=r) for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([b(x) for b in self.branches]).sum(0)


class PDN(FlatSegmenter):
    """Dilated ResNet (output stride 8) with ``modules`` diffusion modules and intermediate supervision."""

    def __init__(self, num_classes: int | None = None, datasets: Sequence[str] | None = None,
                 taxonomy: Taxonomy | None = None, backbone: str = "resnet101",
                 backbone_weights: str | Path | None = None, frozen_bn: bool = False,
                 neighbours: int = 24, layers: int = 4, modules: int = 1, channels: int = 256,
                 aux_weight: float = 1.0) -> None:
        super().__init__(make_outputs(num_classes, datasets, taxonomy, default=PAPER_DATASETS))
        if neighbours not in NEIGHBOURS:
            raise HiersegError(f"pdn neighbours must be 8 or 24 (one or two spatial LSTMs), not {neighbours}")
        if layers < 1:
            raise HiersegError(f"pdn layers must be at least 1 (the paper uses 4), not {layers}")
        if modules not in (1, 2):
            raise HiersegError(f"pdn modules must be 1 (between 5b and 5c) or 2 (also after stage 4), not {modules}")
        if channels < 1:
            raise HiersegError(f"pdn channels must be at least 1 (the paper uses 256), not {channels}")
        self.backbone = ResNetStages(backbone, output_stride=8, weights=backbone_weights, frozen_bn=frozen_bn)
        if len(self.backbone.body.layer4) < 2:
            raise HiersegError(f"pdn backbone {backbone!r}: its last stage needs two blocks to insert between")
        spatial = NEIGHBOURS[neighbours]
        stage4, stage5 = self.backbone.channels[2:]
        # blocks[0]: between 5b and 5c; blocks[1] (modules=2): between stages 4 and 5.
        self.blocks = nn.ModuleList(DiffusionBlock(c, channels, spatial, layers) for c in (stage5, stage4)[:modules])
        self.aux_heads = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(channels, self.outputs.num_outputs, 1) for _ in range(layers)) for _ in self.blocks)
        for heads in self.aux_heads:
            for conv in heads:
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)
        self.classifier = ASPPClassifier(stage5, self.outputs.num_outputs)
        self.aux_weight = aux_weight

    def diffusion_weight_count(self) -> int:
        """Table 1 weights (no biases) of all diffusion modules together."""
        return sum(block.module.weight_count() for block in self.blocks)

    def family_figures(self) -> dict[str, Any]:
        return {"diffusion_weights": self.diffusion_weight_count()}

    def scores(self, image: torch.Tensor) -> list[tuple[str, torch.Tensor, float]]:
        layer1, layer2, layer3, layer4 = self.backbone.stages
        x = layer3(layer2(layer1(self.backbone.stem(image))))
        depth_maps: list[list[torch.Tensor]] = [[] for _ in self.blocks]
        if len(self.blocks) == 2:
            x, depth_maps[1] = self.blocks[1](x)
        x = layer4[:-1](x)
        x, depth_maps[0] = self.blocks[0](x)
        x = layer4[-1](x)
        out = [("main", self.classifier(x), 1.0)]
        if self.training:
            for m, (heads, depth) in enumerate(zip(self.aux_heads, depth_maps, strict=True), 1):
                out += [(f"pdn{m}_layer{t}", head(h), self.aux_weight)
                        for t, (head, h) in enumerate(zip(heads, depth, strict=True), 1)]
        return out


def _create_pdn(variant: str, **kwargs: Any) -> PDN:
    """PDN as registered variant ``variant`` names it (its backbone); ``kwargs`` override, ``backbone`` too."""
    return PDN(**{"backbone": variant_backbone(variant), **kwargs})


@register_model
def pdn_resnet18(**kwargs: Any) -> PDN:
    return _create_pdn("pdn_resnet18", **kwargs)


@register_model
def pdn_resnet50(**kwargs: Any) -> PDN:
    return _create_pdn("pdn_resnet50", **kwargs)


@register_model
def pdn_resnet101(**kwargs: Any) -> PDN:
    return _create_pdn("pdn_resnet101", **kwargs)
