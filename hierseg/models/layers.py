"""Building blocks more than one family uses: convolution + batch norm (+ ReLU), DeepLab's atrous spatial pyramid
pooling (DSSPN's transition Q, the flat DeepLab head, DSNet's context module), score resizing, parameter counts."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    """1x1 convolution (no bias) + batch norm."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize of score or feature maps to ``size`` (the maps themselves when they have it already)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def count_params(params: nn.Module | Iterable[nn.Parameter]) -> int:
    """Number of parameter entries of a module, or of a list of parameters."""
    return sum(p.numel() for p in (params.parameters() if isinstance(params, nn.Module) else params))


class ASPP(nn.Module):
    """Parallel 3x3 atrous branches (rates 6, 12, 18 by default), concatenated and projected to ``out_channels``.

    ``pointwise`` adds DeepLab v3's 1x1 branch and ``image_pool`` its global-pooling branch; DSSPN's Q uses
    neither (three 3x3 branches, 256 outputs, paper 3.2).
    """

    def __init__(self, in_channels: int, out_channels: int = 256, rates: tuple[int, ...] = (6, 12, 18),
                 pointwise: bool = False, image_pool: bool = False) -> None:
        super().__init__()
        self.branches = nn.ModuleList(conv_bn_relu(in_channels, out_channels, 3, r) for r in rates)
        if pointwise:
            self.branches.append(conv_bn_relu(in_channels, out_channels, 1))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                  nn.ReLU(inplace=True)) if image_pool else None
        n = len(self.branches) + (1 if image_pool else 0)
        self.project = conv_bn_relu(n * out_channels, out_channels, 1)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [b(x) for b in self.branches]
        if self.pool is not None:
            parts.append(F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(parts, 1))
