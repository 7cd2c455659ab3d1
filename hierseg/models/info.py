"""Structural facts about a model (``hierseg models info``): parameter counts and each family's own figures."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.models.registry import accepted_arguments, create_model, model_family


def count(params: Any) -> int:
    return sum(p.numel() for p in params)


def build(name: str, kwargs: dict[str, Any], device: str = "meta") -> nn.Module:
    """Build on the meta device (no memory, no initialisation cost) or the CPU."""
    with torch.device(device):
        return create_model(name, **kwargs)


def model_info(name: str, overrides: dict[str, Any] | None = None, dataset: str | None = None,
               device: str = "meta") -> dict[str, Any]:
    """Parameter counts (total, backbone, head) plus the family's structural figures, as a flat dict."""
    kwargs = dict(overrides or {})
    accepted = accepted_arguments(name)
    if dataset is not None and "datasets" in accepted and "datasets" not in kwargs and "num_classes" not in kwargs:
        kwargs["datasets"] = [dataset]
    model = build(name, kwargs, device)
    groups = model.param_groups()
    info: dict[str, Any] = {"model": name, "family": model_family(name)}
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "name"):
        info["backbone"] = backbone.name
        info["output_stride"] = backbone.output_stride
        info["weights"] = backbone.weights.source
    info["params"] = count(model.parameters())
    info["backbone_params"] = count(groups["backbone"])
    info["head_params"] = count(groups["head"])
    if hasattr(model, "structure_info"):
        info.update(model.structure_info(dataset))
    elif dataset is not None and dataset not in getattr(model, "label_spaces", ()):
        raise HiersegError(f"model {name!r} cannot predict {dataset!r}")
    if hasattr(model, "diffusion_weight_count"):  # PDN: the Table 1 figure
        info["diffusion_weights"] = model.diffusion_weight_count()
    if hasattr(model, "outputs"):
        info["outputs"] = model.outputs.num_outputs
        info["label_spaces"] = ",".join(model.label_spaces) or "raw classes"
    return info
