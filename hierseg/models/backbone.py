"""timm feature backbones: dilated to a chosen output stride, weights from a local file or the Hugging Face hub.

Two forms: :class:`Backbone`, timm's ``features_only`` network, for models that only read feature maps (DSSPN,
DeepLab, DSNet); :class:`ResNetStages`, a plain timm ResNet (no classifier, no pooling) as its stem and stages, for
models that insert modules between stages or blocks (PDN) or chain several encoders (SPGNet).

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
from typing import Any

import timm
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.core.io import read_text

HUB_PREFIX = "hf-hub:"
RESNET_STEM = ("conv1", "bn1", "act1", "maxpool")
RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


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
    try:  # the cache's file, through the bounded FIFO-safe reader: a damaged one is no reason to stop here
        config = json.loads(read_text(cached, "hub config"))
    except (HiersegError, ValueError, RecursionError):
        return
    architecture = config.get("architecture") if isinstance(config, dict) else None
    if architecture and architecture != name.split(".")[0]:
        raise HiersegError(f"backbone weights {hub_id} are for {architecture}, but the backbone is {name}; "
                           f"use weights of a {name} or set the model's backbone to {architecture}")


def _check_output_stride(output_stride: int) -> None:
    if output_stride not in (8, 16, 32):
        raise HiersegError(f"backbone output_stride must be 8, 16 or 32, not {output_stride}")


def create_timm_model(name: str, weights: str | Path | None = None, **kwargs: Any) -> tuple[nn.Module, BackboneWeights]:
    """``timm.create_model(name, **kwargs)`` with its weights from ``weights`` (a file, a hub id or nothing, see
    :func:`weights_source`); timm's and the hub's failures become one-line :class:`HiersegError`."""
    kwargs = dict(kwargs, pretrained=False)
    source = weights_source(weights)
    if source.source == "file":
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=source.file))
    elif source.source == "hub":
        _check_hub_architecture(name, source.hub_id)
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(hf_hub_id=source.hub_id, source="hf-hub"))
    try:
        return timm.create_model(name, **kwargs), source
    except RuntimeError as exc:  # timm names unknown models and broken checkpoints with RuntimeError
        raise HiersegError(f"backbone {name!r}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:
        if source.source == "hub" and type(exc).__module__.startswith("huggingface_hub"):
            raise _hub_error(source.hub_id, exc) from None
        raise


class Backbone(nn.Module):
    """A timm ``features_only`` network returning the feature maps of ``out_indices``, finest first."""

    def __init__(self, name: str = "resnet101", output_stride: int = 8, out_indices: tuple[int, ...] = (4,),
                 weights: str | Path | None = None, frozen_bn: bool = False, in_chans: int = 3) -> None:
        super().__init__()
        _check_output_stride(output_stride)
        self.body, self.weights = create_timm_model(name, weights, features_only=True, output_stride=output_stride,
                                                    out_indices=tuple(out_indices), in_chans=in_chans)
        self.name = name
        self.output_stride = output_stride
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.reductions: list[int] = list(self.body.feature_info.reduction())
        if frozen_bn:
            # Paper 4.1: batch-norm statistics stay those of pre-training (small batches would spoil them).
            self.body = timm.layers.freeze_batch_norm_2d(self.body)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


class ResNetStages(nn.Module):
    """A timm ResNet taken apart into its stem and four stages, for models that work between stages or blocks.

    The plain timm model is built without classifier and pooling (``num_classes=0, global_pool=""``), dilated to
    ``output_stride``, with weights from the same sources as :class:`Backbone`. ``body`` holds the parts under timm's
    own names (``conv1, bn1, act1, maxpool`` when ``stem``, then ``layer1 .. layer4``), so the state-dict keys are
    the timm model's under ``body.``. Without ``stem`` the input is already a stem's output (64 channels, 1/4).
    """

    def __init__(self, name: str = "resnet101", output_stride: int = 8, weights: str | Path | None = None,
                 frozen_bn: bool = False, stem: bool = True) -> None:
        super().__init__()
        _check_output_stride(output_stride)
        advice = "use a timm resnet or resnext (resnet18, resnet50, resnet101, ...)"
        try:
            net, self.weights = create_timm_model(name, weights, num_classes=0, global_pool="",
                                                  output_stride=output_stride)
        except TypeError as exc:  # an architecture without output_stride (MobileNetV3, ...) is no ResNet either
            raise HiersegError(f"backbone {name!r} is not a timm ResNet ({str(exc).splitlines()[0]}); {advice}") from None
        missing = [k for k in (*RESNET_STEM, *RESNET_STAGES) if not isinstance(getattr(net, k, None), nn.Module)]
        if missing:
            raise HiersegError(f"backbone {name!r} is not a timm ResNet (it has no {missing[0]}); {advice}")
        info = {f["module"]: f for f in net.feature_info}
        self.channels: list[int] = [info[k]["num_chs"] for k in RESNET_STAGES]
        self.reductions: list[int] = [info[k]["reduction"] for k in RESNET_STAGES]
        if frozen_bn:
            # Paper 4.1: batch-norm statistics stay those of pre-training (small batches would spoil them).
            net = timm.layers.freeze_batch_norm_2d(net)
        self.body = nn.ModuleDict({k: getattr(net, k) for k in (RESNET_STEM if stem else ()) + RESNET_STAGES})
        self.name = name
        self.output_stride = output_stride
        self.has_stem = stem

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The 7x7 convolution, batch norm, activation and max-pool: the image to 1/4 resolution."""
        if not self.has_stem:
            raise HiersegError(f"this {self.name} was built without its stem (stem=False)")
        for k in RESNET_STEM:
            x = self.body[k](x)
        return x

    @property
    def stages(self) -> list[nn.Sequential]:
        """``layer1 .. layer4``, each a sequence of residual blocks."""
        return [self.body[k] for k in RESNET_STAGES]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stages' outputs, finest first (after the stem when there is one)."""
        if self.has_stem:
            x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def create_backbone(name: str = "resnet101", output_stride: int = 8, out_indices: tuple[int, ...] = (4,),
                    weights: str | Path | None = None, frozen_bn: bool = False) -> Backbone:
    """One call for a dilated timm backbone; see :class:`Backbone`."""
    return Backbone(name, output_stride, out_indices, weights, frozen_bn)
