"""DSNet: Dynamic Sampling Network (Fu et al., AAAI 2020).

A ResNet at output stride 16 with ASPP on top; the Context Guided Dynamic Sampling (CGDS) module then lets the
multi-scale context X(ASPP) choose, for every position of the stage-3 (output stride 8) feature map, the ``k x k``
points at which a ``k x k`` convolution reads that map (Eq. 2, bilinear at fractional points). The modified
low-level feature X(M), the sampled feature X(S) and the upsampled X(ASPP) are concatenated and classified at
output stride 8; stage 4 is deeply supervised (PSPNet-style auxiliary loss).

Stages follow the paper's naming, X(i) = the i-th ResNet stage: X(3) = ``layer2`` (OS 8, timm index 2),
X(4) = ``layer3`` (timm index 3), X(5) = ``layer4`` (timm index 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torchvision.ops import deform_conv2d

from hierseg.core.errors import HiersegError
from hierseg.models.backbone import Backbone
from hierseg.models.base import FlatSegmenter, variant_backbone
from hierseg.models.layers import ASPP, conv_bn_relu, resize
from hierseg.models.outputs import make_outputs
from hierseg.models.registry import register_model
from hierseg.taxonomy.tree import Taxonomy

# Without num_classes or datasets: ADE20K, the paper's main dataset among those hierseg reads (its PASCAL VOC and
# Context results are not).
PAPER_DATASETS = ("ade20k",)
CHANNELS = 256  # width of ASPP, X(M), X(S) and the classifier (the paper does not give them; DeepLab v3+ uses 256)
LOW_LEVEL, DEEP_SUPERVISED, TOP = 2, 3, 4  # timm indices of X(3), X(4), X(5)


def check_kernel(kernel: int) -> int:
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise HiersegError(f"DSNet kernel must be an odd positive integer (the k x k sampling grid is centred on "
                           f"each position), not {kernel!r}")
    return kernel



class DynamicSamplingConv(nn.Module):
    """Eq. (2): ``S(p) = sum_t K_t X(p + g_t + d_t(p))``, a ``k x k`` convolution whose tap ``t`` reads the input at
    the regular grid point ``g_t`` moved by a per-position offset ``d_t(p)``, bilinearly (zero outside the map).

    Computed exactly by :func:`torchvision.ops.deform_conv2d` (DCN v1, no modulation mask), which runs on CPU and
    GPU and differentiates in both the input and the offsets. ``offsets`` is ``(B, 2 k k, H, W)``, tap by tap in
    row-major order, each as ``(dy, dx)`` in input pixels; zero offsets give the plain ``k x k`` convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, bias: bool = False) -> None:
        super().__init__()
        self.kernel = check_kernel(kernel)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default, so it starts as a plain conv

    def forward(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        if offsets.shape[1] != 2 * self.kernel**2 or offsets.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"offsets of shape {tuple(offsets.shape)} do not fit a {self.kernel}x{self.kernel} "
                             f"sampling of a {tuple(x.shape)} input")
        # in fp32 under autocast, as torchvision's own CUDA autocast rule runs it: it has no bf16 CPU kernel
        wide = torch.promote_types(x.dtype, torch.float32)  # float64 stays float64
        # no autocast on the meta device (shape checks), so nothing to turn off there
        with nullcontext() if x.device.type == "meta" else torch.autocast(x.device.type, enabled=False):
            bias = self.bias.to(wide) if self.bias is not None else None
            out = deform_conv2d(x.to(wide), offsets.to(wide), self.weight.to(wide), bias, padding=self.kernel // 2)
        return out.to(x.dtype)


class CGDS(nn.Module):
    """Context Guided Dynamic Sampling (Fig. 2, 3): high-level context places the samples on a low-level map.

    ``forward(low, high)`` returns X(F) = [X(M), X(S), up(X(ASPP))] at the low-level map's resolution.
    """

    def __init__(self, low_channels: int, high_channels: int, channels: int = CHANNELS, kernel: int = 3) -> None:
        super().__init__()
        check_kernel(kernel)
        # Feature modification: brings the low-level map closer to the high-level one before it is sampled.
        self.modify = conv_bn_relu(low_channels, channels, 1)
        # One conv (the paper's choice over a non-local sub-network) predicts 2 k k coordinates per position, as
        # offsets from the regular grid. Zero init: training starts from the plain convolution, as for DCN.
        self.sampling_points = nn.Conv2d(high_channels, 2 * kernel * kernel, 3, padding=1)
        nn.init.zeros_(self.sampling_points.weight)
        nn.init.zeros_(self.sampling_points.bias)
        self.sample = DynamicSamplingConv(channels, channels, kernel)
        # Normalised like X(M) and X(ASPP) so that no part of the concatenation dominates by scale.
        self.sample_post = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.out_channels = 2 * channels + high_channels

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        modified = self.modify(low)
        high = resize(high, modified.shape[-2:])
        sampled = self.sample_post(self.sample(modified, self.sampling_points(high)))
        return torch.cat([modified, sampled, high], 1)


def classifier(in_channels: int, num_outputs: int) -> nn.Sequential:
    """3x3 conv-BN-ReLU, dropout, 1x1 scores: the usual PSPNet/EncNet head (the paper does not detail its own)."""
    return nn.Sequential(conv_bn_relu(in_channels, CHANNELS, 3), nn.Dropout2d(0.1),
                         nn.Conv2d(CHANNELS, num_outputs, 1))


class DSNet(FlatSegmenter):
    """Dilated ResNet (OS 16) + ASPP + CGDS on stage 3 (OS 8), with deep supervision on stage 4.

    ``kernel`` is the dynamic sampling convolution's ``k`` (``2 k k`` predicted coordinates per position);
    ``aux_weight`` weights the stage-4 auxiliary loss (0.4 as in PSPNet, whose deep supervision the paper uses;
    0 removes the auxiliary head).
    """

    def __init__(self, num_classes: int | None = None, datasets: Sequence[str] | None = None,
                 taxonomy: Taxonomy | None = None, backbone: str = "resnet101",
                 backbone_weights: str | None = None, frozen_bn: bool = False,
                 kernel: int = 3, aux_weight: float = 0.4) -> None:
        super().__init__(make_outputs(num_classes, datasets, taxonomy, default=PAPER_DATASETS))
        check_kernel(kernel)
        if not aux_weight >= 0:
            raise HiersegError(f"DSNet aux_weight must be 0 (no deep supervision) or positive, not {aux_weight}")
        self.kernel = kernel
        self.aux_weight = float(aux_weight)
        self.backbone = Backbone(backbone, output_stride=16, out_indices=(LOW_LEVEL, DEEP_SUPERVISED, TOP),
                                 weights=backbone_weights, frozen_bn=frozen_bn)
        if self.backbone.reductions != [8, 16, 16]:
            raise HiersegError(f"DSNet backbone {backbone!r}: stages 3-5 have output strides "
                               f"{self.backbone.reductions}, expected [8, 16, 16] (use a ResNet)")
        low_channels, mid_channels, top_channels = self.backbone.channels
        # DeepLab v3+ ASPP (the paper's citation): 1x1 + three atrous 3x3 branches + image pooling, rates for OS 16.
        self.aspp = ASPP(top_channels, CHANNELS, rates=(6, 12, 18), pointwise=True, image_pool=True)
        self.cgds = CGDS(low_channels, CHANNELS, CHANNELS, kernel)
        self.classifier = classifier(self.cgds.out_channels, self.outputs.num_outputs)
        self.aux = classifier(mid_channels, self.outputs.num_outputs) if self.aux_weight > 0 else None

    def scores(self, image: torch.Tensor) -> list[tuple[str, torch.Tensor, float]]:
        low, mid, top = self.backbone(image)
        out = [("main", self.classifier(self.cgds(low, self.aspp(top))), 1.0)]
        if self.training and self.aux is not None:
            out.append(("aux", self.aux(mid), self.aux_weight))
        return out


def _create_dsnet(variant: str, **kwargs: Any) -> DSNet:
    """DSNet as registered variant ``variant`` names it (its backbone); ``kwargs`` override, ``backbone`` too."""
    return DSNet(**{"backbone": variant_backbone(variant), **kwargs})


@register_model
def dsnet_resnet18(**kwargs: Any) -> DSNet:
    return _create_dsnet("dsnet_resnet18", **kwargs)


@register_model
def dsnet_resnet50(**kwargs: Any) -> DSNet:
    return _create_dsnet("dsnet_resnet50", **kwargs)


@register_model
def dsnet_resnet101(**kwargs: Any) -> DSNet:
    return _create_dsnet("dsnet_resnet101", **kwargs)
