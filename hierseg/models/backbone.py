"""timm feature backbones: dilated to a chosen output stride, weights only from a file the user names.

Weight sources, in order: ``weights=PATH`` (a local checkpoint, loaded through timm's
``pretrained_cfg_overlay=dict(file=PATH)``), else random initialisation. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from hierseg.taxonomy.errors import HiersegError


@dataclass(frozen=True)
class BackboneWeights:
    """Where a backbone's weights came from (torchvision-style typed metadata)."""

    source: str  # "file" or "random"
    file: str | None = None


class Backbone(nn.Module):
    """A timm ``features_only`` network returning the feature maps of ``out_indices``, finest first."""

    def __init__(self, name: str = "resnet101", output_stride: int = 8, out_indices: tuple[int, ...] = (4,),
                 weights: str | Path | None = None, frozen_bn: bool = False, in_chans: int = 3) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise HiersegError(f"backbone output_stride must be 8, 16 or 32, not {output_stride}")
        kwargs: dict = dict(features_only=True, output_stride=output_stride, out_indices=tuple(out_indices),
                            in_chans=in_chans, pretrained=False)
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise HiersegError(f"backbone weights {path}: no such file (pass a local timm/torchvision checkpoint;"
                                   " nothing is downloaded)")
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        try:
            self.body = timm.create_model(name, **kwargs)
        except RuntimeError as exc:  # timm names unknown models and broken checkpoints with RuntimeError
            raise HiersegError(f"backbone {name!r}: {str(exc).splitlines()[0]}") from None
        self.name = name
        self.output_stride = output_stride
        self.weights = BackboneWeights("file", str(weights)) if weights is not None else BackboneWeights("random")
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.reductions: list[int] = list(self.body.feature_info.reduction())
        if frozen_bn:
            # Paper 4.1: batch-norm statistics stay those of pre-training (small batches would spoil them).
            self.body = timm.layers.freeze_batch_norm_2d(self.body)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


def create_backbone(name: str = "resnet101", output_stride: int = 8, out_indices: tuple[int, ...] = (4,),
                    weights: str | Path | None = None, frozen_bn: bool = False) -> Backbone:
    """One call for a dilated timm backbone; see :class:`Backbone`."""
    return Backbone(name, output_stride, out_indices, weights, frozen_bn)
