"""Flat DeepLab: a dilated ResNet, ASPP and one 1x1 classifier over all outputs (the baseline of DSSPN's tables).

The context module is built exactly like DSSPN's transition Q (three 3x3 atrous branches at rates 6, 12, 18, 256
channels, no 1x1 or image-pooling branch unless asked for), so that DeepLab against DSSPN compares the heads alone:
one softmax layer over every concept against the tree of semantic neurons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from hierseg.models.backbone import Backbone
from hierseg.models.base import FlatSegmenter, variant_backbone
from hierseg.models.layers import ASPP
from hierseg.models.outputs import make_outputs
from hierseg.models.registry import register_model
from hierseg.taxonomy.tree import Taxonomy

# Without num_classes or datasets: ADE20K, where DSSPN's Table 1 compares against the flat multi-class ResNet-101
# head, and where its ablations run.
PAPER_DATASETS = ("ade20k",)


class DeepLab(FlatSegmenter):
    """Backbone (output stride 8) -> ASPP(256) -> 1x1 conv to ``num_outputs`` scores at 1/``output_stride``."""

    def __init__(self, num_classes: int | None = None, datasets: Sequence[str] | None = None,
                 taxonomy: Taxonomy | None = None, backbone: str = "resnet101",
                 backbone_weights: str | None = None, frozen_bn: bool = False,
                 output_stride: int = 8, aspp_channels: int = 256, aspp_rates: tuple[int, ...] = (6, 12, 18),
                 aspp_pointwise: bool = False, aspp_image_pool: bool = False) -> None:
        super().__init__(make_outputs(num_classes, datasets, taxonomy, default=PAPER_DATASETS))
        self.backbone = Backbone(backbone, output_stride, (4,), backbone_weights, frozen_bn)
        self.aspp = ASPP(self.backbone.channels[-1], aspp_channels, tuple(aspp_rates), aspp_pointwise, aspp_image_pool)
        self.classifier = nn.Conv2d(aspp_channels, self.outputs.num_outputs, 1)
        # Small scores at the start: every output starts near 1/N, so the first steps do not fight a random ranking.
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def scores(self, image: torch.Tensor) -> list[tuple[str, torch.Tensor, float]]:
        features = self.backbone(image)[-1]
        return [("main", self.classifier(self.aspp(features)), 1.0)]


def _create_deeplab(variant: str, **kwargs: Any) -> DeepLab:
    """DeepLab as registered variant ``variant`` names it (its backbone); ``kwargs`` override, ``backbone`` too."""
    return DeepLab(**{"backbone": variant_backbone(variant), **kwargs})


@register_model
def deeplab_resnet18(**kwargs: Any) -> DeepLab:
    return _create_deeplab("deeplab_resnet18", **kwargs)


@register_model
def deeplab_resnet50(**kwargs: Any) -> DeepLab:
    return _create_deeplab("deeplab_resnet50", **kwargs)


@register_model
def deeplab_resnet101(**kwargs: Any) -> DeepLab:
    """The paper's baseline: DeepLab (ResNet-101, output stride 8)."""
    return _create_deeplab("deeplab_resnet101", **kwargs)
