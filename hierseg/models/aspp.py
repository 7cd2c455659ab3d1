"""Atrous spatial pyramid pooling (DeepLab): the DSSPN transition Q and the flat DeepLab head's context module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


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
