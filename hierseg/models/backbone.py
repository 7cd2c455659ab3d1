"""timm feature backbones: dilated to a chosen output stride, weights from a local file or the Hugging Face hub.

Weight sources, in this order (:func:`weights_source`):

1. ``weights=PATH``, an existing local checkpoint (timm or torchvision state dict), loaded through timm's
   ``pretrained_cfg_overlay=dict(file=PATH)``;
2. ``weights="timm/<name>"`` (``timm/resnet101.a1h_in1k``) or ``"hf-hub:<org>/<repo>[@revision]"``: a hub
   repository holding timm weights, which timm loads through ``huggingface_hub``: downloaded once with a network,
   read from the Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``)
   afterwards and offline (``HF_HUB_OFFLINE=1``);
3. nothing: random initialisation.

Anything else, or hub weights that are neither cached nor reachable, is a one-line :class:`HiersegError` that says
how to fetch the weights or point at a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from hierseg.core.errors import HiersegError

HUB_PREFIX = "hf-hub:"


@dataclass(frozen=True)
class BackboneWeights:
    """Where a backbone's weights came from (torchvision-style typed metadata)."""

    source: str  # "file", "hub" or "random"
    file: str | None = None
    hub_id: str | None = None  # "timm/resnet18.a1_in1k" (with "@revision" when one was asked for)


def weights_source(weights: str | Path | None) -> BackboneWeights:
    """Which of the sources a ``backbone_weights`` value names; a missing file is a one-line error."""
    if weights is None:
        return BackboneWeights("random")
    text = str(weights)
    path = Path(text).expanduser()
    if path.is_file():
        return BackboneWeights("file", str(path))
    if text.startswith(HUB_PREFIX) and len(text) > len(HUB_PREFIX):
        return BackboneWeights("hub", hub_id=text[len(HUB_PREFIX):])
    if text.startswith("timm/") and len(text) > len("timm/") and not path.exists():
        return BackboneWeights("hub", hub_id=text)
    raise HiersegError(f"backbone weights {text}: no such file (pass a local timm/torchvision checkpoint, "
                       "timm/<name> or hf-hub:<org>/<repo> for weights from the Hugging Face hub)")


def _hub_error(hub_id: str, exc: Exception) -> HiersegError:
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(exc, LocalEntryNotFoundError | OfflineModeIsEnabled):
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        return HiersegError(f"backbone weights {hub_id}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
                            f"and the hub cannot be reached{offline}; fetch them once with network access "
                            f"(hf download {hub_id.split('@')[0]}), or set backbone_weights to a local file")
    return HiersegError(f"backbone weights {hub_id}: {str(exc).strip().splitlines()[0]}")


def _check_hub_architecture(name: str, hub_id: str) -> None:
    """A cached repository's config.json names the architecture its weights are for; refuse another one."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = hub_id.partition("@")
    try:
        cached = try_to_load_from_cache(repo, "config.json", revision=revision or None)
    except Exception:  # noqa: BLE001  (an id the hub would reject is reported by the download itself)
        return
    if not isinstance(cached, str):
        return
    try:
        architecture = json.loads(Path(cached).read_text(encoding="utf-8")).get("architecture")
    except (OSError, ValueError):
        return
    if architecture and architecture != name.split(".")[0]:
        raise HiersegError(f"backbone weights {hub_id} are for {architecture}, but the backbone is {name}; "
                           f"use weights of a {name} or set the model's backbone to {architecture}")


class Backbone(nn.Module):
    """A timm ``features_only`` network returning the feature maps of ``out_indices``, finest first."""

    def __init__(self, name: str = "resnet101", output_stride: int = 8, out_indices: tuple[int, ...] = (4,),
                 weights: str | Path | None = None, frozen_bn: bool = False, in_chans: int = 3) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise HiersegError(f"backbone output_stride must be 8, 16 or 32, not {output_stride}")
        kwargs: dict = dict(features_only=True, output_stride=output_stride, out_indices=tuple(out_indices),
                            in_chans=in_chans, pretrained=False)
        source = weights_source(weights)
        if source.source == "file":
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=source.file))
        elif source.source == "hub":
            _check_hub_architecture(name, source.hub_id)
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(hf_hub_id=source.hub_id, source="hf-hub"))
        try:
            self.body = timm.create_model(name, **kwargs)
        except RuntimeError as exc:  # timm names unknown models and broken checkpoints with RuntimeError
            raise HiersegError(f"backbone {name!r}: {str(exc).splitlines()[0]}") from None
        except Exception as exc:
            if source.source == "hub" and type(exc).__module__.startswith("huggingface_hub"):
                raise _hub_error(source.hub_id, exc) from None
            raise
        self.name = name
        self.output_stride = output_stride
        self.weights = source
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
