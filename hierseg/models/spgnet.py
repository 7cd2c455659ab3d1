"""SPGNet (Cheng et al., ICCV 2019): stacked ResNet encoder-decoders joined by Semantic Prediction Guidance.

Each stage is a ResNet encoder (the 7x7 stem and max-pool only in the first stage) whose layer4 output is globally
average-pooled and projected to the decoder width; the decoder climbs back to 1/4 resolution with the paper's
upsample module (residual block on the encoder feature + bilinearly upsampled previous output, then another
residual block). Between stages the SPG module turns the decoder output into supervised per-class logits, excites
the decoder features with them and feeds the result to the next encoder's layer1, while Cross-Stage Feature
Aggregation (MSPN) adds the previous stage's encoder and decoder features to the next encoder at every scale.

Choices where the paper is silent (they reproduce its parameter counts, Tables 3, 5, 6, 7 and 9, within 1 %):

- the residual block on the encoder feature is a bottleneck with ``width / 2`` inner channels and a projected
  shortcut; the fusing block a standard ResNet bottleneck (``width / 4`` inner channels, identity shortcut);
- the GAP projection has no batch norm (a 1x1 map would make training with one image per GPU impossible);
- SPG's transform is conv + BN, its projection to the next stage conv + BN + ReLU (to the stem's 64 channels);
- cross-stage aggregation is a 1x1 conv + BN on each of the previous encoder and decoder features per scale,
  added to the output of the matching ResNet layer of the next encoder;
- "softmax" excitation is a softmax over the H x W positions of each attention channel, as Section 4.4 says;
- OHEM keeps, per image, every valid pixel whose loss exceeds ``ohem_threshold`` and at least the
  ``ohem_keep`` fraction of hardest ones (0.15: DeeperLab's top-K, reference [67]; the paper gives no value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.models.backbone import ResNetStages
from hierseg.models.base import FlatSegmenter, variant_backbone
from hierseg.models.layers import conv_bn, conv_bn_relu
from hierseg.models.outputs import make_outputs
from hierseg.models.registry import register_model
from hierseg.taxonomy.tree import Taxonomy

Excitation = Literal["sigmoid", "softmax", "sum", "none"]
EXCITATIONS: tuple[str, ...] = ("sigmoid", "softmax", "sum", "none")


PAPER_DATASETS = ("cityscapes",)  # without num_classes or datasets: the paper's dataset


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1) from ``cin`` to ``cout`` channels, projected shortcut when they differ."""

    def __init__(self, cin: int, cout: int, mid: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin, mid, 1), conv_bn_relu(mid, mid, 3),
                                  nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = conv_bn(cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class UpsampleModule(nn.Module):
    """Paper 3.3: residual block on the encoder feature, add the upsampled previous output, fuse with another."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.lateral = Bottleneck(cin, width, width // 2)
        self.fuse = Bottleneck(width, width, width // 4)

    def forward(self, skip: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        skip = self.lateral(skip)
        # To the skip's own size, not x2: odd inputs give e.g. 5 -> 9 -> 17 -> 33 along the pyramid.
        previous = F.interpolate(previous, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(skip + previous)


def window_mean(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Mean over a ``kernel`` x ``kernel`` window around every position (windows clipped at the border), or the
    global mean when the window covers the whole map."""
    h, w = x.shape[-2:]
    if kernel >= h and kernel >= w:
        return x.mean((2, 3), keepdim=True)
    kh, kw = min(kernel, h), min(kernel, w)
    pooled = F.avg_pool2d(x, (kh, kw), stride=1, padding=(kh // 2, kw // 2), count_include_pad=False)
    return pooled[..., :h, :w]  # an even window yields one extra row/column


class ImageContext(nn.Module):
    """Global average pooling + 1x1 conv to the decoder width (ParseNet), the decoder's starting point.

    With ``eval_pool_crop`` (the training crop in pixels) evaluation averages over a crop-sized window around each
    position instead of the whole image: the paper's "AP" strategy (Table 12), which keeps the pooled statistics
    those of training when a full 1024x2048 image is evaluated.
    """

    def __init__(self, cin: int, width: int, reduction: int, eval_pool_crop: int | None = None) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(cin, width, 1), nn.ReLU(inplace=True))
        self.kernel = math.ceil(eval_pool_crop / reduction) if eval_pool_crop is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.kernel is None:
            return self.project(x.mean((2, 3), keepdim=True))
        return self.project(window_mean(x, self.kernel))


class Decoder(nn.Module):
    """From the image-level feature down to 1/4 resolution; returns the decoder features finest first."""

    def __init__(self, channels: Sequence[int], width: int, reduction: int, eval_pool_crop: int | None) -> None:
        super().__init__()
        self.context = ImageContext(channels[-1], width, reduction, eval_pool_crop)
        self.ups = nn.ModuleList(UpsampleModule(c, width) for c in reversed(channels))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.context(features[-1])
        out = []
        for up, skip in zip(self.ups, reversed(features), strict=True):
            x = up(skip, x)
            out.append(x)
        return out[::-1]


class Encoder(nn.Module):
    """One stage's timm ResNet: the stem (first stage only), then layer1..layer4, each output optionally summed
    with the cross-stage features of its scale."""

    def __init__(self, name: str, weights: str | Path | None, frozen_bn: bool, stem: bool) -> None:
        super().__init__()
        # Later stages start from the previous stage's 1/4-resolution output (paper Figure 2): no stem of their own.
        self.net = ResNetStages(name, output_stride=32, weights=weights, frozen_bn=frozen_bn, stem=stem)
        self.channels: list[int] = self.net.channels
        self.reductions: list[int] = self.net.reductions
        self.in_channels: int = self.net.body.layer1[0].conv1.in_channels  # what a later stage's input must have

    def forward(self, x: torch.Tensor, cross: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        if self.net.has_stem:
            x = self.net.stem(x)
        features = []
        for i, stage in enumerate(self.net.stages):
            x = stage(x)
            if cross is not None:
                x = x + cross[i]
            features.append(x)
        return features


class CrossStage(nn.Module):
    """Cross-Stage Feature Aggregation (MSPN): 1x1 conv + BN of the previous encoder and decoder features."""

    def __init__(self, encoder_channels: Sequence[int], width: int, next_channels: Sequence[int]) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(conv_bn(c, n) for c, n in zip(encoder_channels, next_channels, strict=True))
        self.decoder = nn.ModuleList(conv_bn(width, n) for n in next_channels)

    def forward(self, encoded: list[torch.Tensor], decoded: list[torch.Tensor]) -> list[torch.Tensor]:
        return [e(x) + d(y) for e, d, x, y in zip(self.encoder, self.decoder, encoded, decoded, strict=True)]


class SPG(nn.Module):
    """Semantic Prediction Guidance (paper 3.4, Figure 3) and its ablations (Table 3).

    ``sigmoid``/``softmax``: the stage's logits, through a 1x1 conv and the activation, multiply a 1x1 transform of
    the decoder features; ``sum``: the 1x1-transformed logits are added instead; ``none``: the baseline, decoder
    features passed on as they are. ``identity`` adds the decoder features back before the projection to the next
    stage's input channels.
    """

    def __init__(self, width: int, num_classes: int, out_channels: int, excitation: Excitation = "sigmoid",
                 identity: bool = True) -> None:
        super().__init__()
        self.excitation = excitation
        self.identity = identity or excitation == "none"
        self.attend = nn.Conv2d(num_classes, width, 1) if excitation != "none" else None
        self.transform = conv_bn(width, width) if excitation in ("sigmoid", "softmax") else None
        self.project = conv_bn_relu(width, out_channels, 1)

    def attention(self, logits: torch.Tensor) -> torch.Tensor:
        """The Guided Attention map (``B x width x H x W``); for ``sum`` the transformed prediction itself."""
        if self.attend is None:
            raise HiersegError("SPG with excitation='none' has no guided attention")
        a = self.attend(logits)
        if self.excitation == "sigmoid":
            return torch.sigmoid(a)
        if self.excitation == "softmax":
            return a.flatten(2).softmax(-1).view_as(a)
        return a

    def forward(self, features: torch.Tensor, logits: torch.Tensor | None) -> torch.Tensor:
        if self.excitation == "none":
            return self.project(features)
        guided = self.attention(logits)
        if self.transform is not None:
            guided = guided * self.transform(features)
        return self.project(guided + features if self.identity else guided)


def ohem_loss(loss: torch.Tensor, valid: torch.Tensor, keep: float = 0.15, threshold: float | None = None) -> torch.Tensor:
    """Online hard example (pixel) mining over per-pixel losses ``(B, H, W)`` and their valid mask.

    Per image, the ``ceil(keep * valid pixels)`` largest valid losses are selected, plus every valid one above
    ``threshold`` (a loss, e.g. ``-ln 0.7`` for "probability of the true class below 0.7"); the result is the mean
    over all selected pixels of the batch (0 with a gradient when nothing is valid).
    """
    flat, ok = loss.flatten(1), valid.flatten(1).bool()
    k = torch.ceil(ok.sum(1) * keep).long()
    order = flat.detach().masked_fill(~ok, float("-inf")).argsort(1, descending=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    chosen = ok & (rank < k[:, None])
    if threshold is not None:
        chosen = chosen | (ok & (flat.detach() > threshold))
    return (flat * chosen).sum() / chosen.sum().clamp(min=1)


class SPGNet(FlatSegmenter):
    """Stacked encoder-decoders with SPG between stages; every stage's per-class logits are supervised.

    ``scores`` returns the last stage's logits ("main", 1/4 resolution) then, with ``spg_supervision``, the earlier
    stages' ("stage1", ...), each with weight 1 (the paper sums the losses); ``ohem`` applies hard pixel mining to
    every one of them (paper 4.4).
    """

    def __init__(self, num_classes: int | None = None, datasets: Sequence[str] | None = None,
                 taxonomy: Taxonomy | None = None, backbone: str = "resnet50",
                 backbone_weights: str | Path | None = None, frozen_bn: bool = False,
                 stages: int = 2, width: int = 128, excitation: Excitation = "sigmoid", identity: bool = True,
                 spg_supervision: bool = True, cross_stage: bool = True, ohem: bool = False, ohem_keep: float = 0.15,
                 ohem_threshold: float | None = None, eval_pool_crop: int | None = None) -> None:
        super().__init__(make_outputs(num_classes, datasets, taxonomy, default=PAPER_DATASETS))
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise HiersegError(f"SPGNet stages must be a whole number >= 1, not {stages!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 4 or width % 4:
            raise HiersegError(f"SPGNet width must be a positive multiple of 4 (bottleneck blocks), not {width!r}")
        if excitation not in EXCITATIONS:
            raise HiersegError(f"SPGNet excitation must be one of {', '.join(EXCITATIONS)}, not {excitation!r}")
        if not 0 < ohem_keep <= 1:
            raise HiersegError(f"SPGNet ohem_keep is the fraction of pixels kept, in (0, 1], not {ohem_keep!r}")
        if ohem_threshold is not None and ohem_threshold < 0:
            raise HiersegError(f"SPGNet ohem_threshold is a per-pixel loss (>= 0), not {ohem_threshold!r}")
        if eval_pool_crop is not None and eval_pool_crop < 1:
            raise HiersegError(f"SPGNet eval_pool_crop is the training crop in pixels, not {eval_pool_crop!r}")
        self.stages, self.width, self.excitation = stages, width, excitation
        self.spg_supervision = spg_supervision and excitation != "none" and stages > 1
        self.ohem, self.ohem_keep, self.ohem_threshold = ohem, ohem_keep, ohem_threshold
        n = self.outputs.num_outputs
        self.backbone = nn.ModuleList(Encoder(backbone, backbone_weights, frozen_bn, stem=s == 0) for s in range(stages))
        enc = self.backbone[0]
        self.decoder = nn.ModuleList(Decoder(enc.channels, width, enc.reductions[-1], eval_pool_crop)
                                     for _ in range(stages))
        # The baseline ("none") has no earlier-stage prediction at all, so no classifier sits unused there.
        self.classifier = nn.ModuleList(nn.Conv2d(width, n, 1) for s in range(stages)
                                        if s == stages - 1 or excitation != "none")
        self.spg = nn.ModuleList(SPG(width, n, enc.in_channels, excitation, identity) for _ in range(stages - 1))
        self.cross_stage = nn.ModuleList(CrossStage(enc.channels, width, enc.channels)
                                         for _ in range(stages - 1)) if cross_stage else None

    def scores(self, image: torch.Tensor) -> list[tuple[str, torch.Tensor, float]]:
        x, cross = image, None
        guided: list[tuple[str, torch.Tensor, float]] = []
        for s in range(self.stages - 1):  # the earlier stages guide the next one
            encoded = self.backbone[s](x, cross)
            decoded = self.decoder[s](encoded)
            logits = self.classifier[s](decoded[0]) if self.excitation != "none" else None
            if self.spg_supervision:
                guided.append((f"stage{s + 1}", logits, 1.0))
            x = self.spg[s](decoded[0], logits)
            cross = self.cross_stage[s](encoded, decoded) if self.cross_stage is not None else None
        decoded = self.decoder[-1](self.backbone[-1](x, cross))
        return [("main", self.classifier[-1](decoded[0]), 1.0), *guided]

    def loss_terms(self, image: torch.Tensor, label: torch.Tensor, dataset: str | None) -> dict[str, torch.Tensor]:
        if not self.ohem:
            return super().loss_terms(image, label, dataset)
        terms = {f"loss_{name}": w * ohem_loss(*self.outputs.pixel_loss(logits, label, dataset), self.ohem_keep,
                                               self.ohem_threshold)
                 for name, logits, w in self.scores(image)}
        return {"loss": torch.stack(list(terms.values())).sum(), **terms}


def _create_spgnet(variant: str, **kwargs: Any) -> SPGNet:
    """SPGNet as registered variant ``variant`` names it (its backbone); ``kwargs`` override, ``backbone`` too."""
    return SPGNet(**{"backbone": variant_backbone(variant), **kwargs})


@register_model
def spgnet_resnet18(**kwargs: Any) -> SPGNet:
    return _create_spgnet("spgnet_resnet18", **kwargs)


@register_model
def spgnet_resnet50(**kwargs: Any) -> SPGNet:
    return _create_spgnet("spgnet_resnet50", **kwargs)


@register_model
def spgnet_resnet101(**kwargs: Any) -> SPGNet:
    return _create_spgnet("spgnet_resnet101", **kwargs)
