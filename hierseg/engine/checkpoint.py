"""Checkpoints: one file holds everything needed to rebuild the model and resume training.

Layout (a ``torch.save`` dict):

- ``format``: ``"hierseg-checkpoint/1"``;
- ``model``: ``{"name": registered model name, "kwargs": JSON-able create_model arguments}``;
- ``taxonomy``: the taxonomy artifact (a dict), so a checkpoint is self-contained;
- ``state_dict``: the model weights (unwrapped from DDP);
- ``training``: optional resume state (optimiser, schedule, sampler position, RNG states, step, epoch, config).

Every write is atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.io import atomic_write_bytes
from hierseg.taxonomy.tree import Taxonomy

FORMAT = "hierseg-checkpoint/1"


def save_checkpoint(path: str | Path, name: str, kwargs: dict[str, Any], model: nn.Module,
                    taxonomy: Taxonomy | None = None, training: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically; ``model`` may be DDP-wrapped."""
    module = model.module if hasattr(model, "module") else model
    payload = {"format": FORMAT, "model": {"name": name, "kwargs": kwargs},
               "taxonomy": taxonomy.artifact if taxonomy is not None else None,
               "state_dict": module.state_dict(), "training": training}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise HiersegError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001  (pickle and zip errors of every kind mean the same to the user)
        raise HiersegError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HiersegError(f"{path}: not a hierseg checkpoint (no format {FORMAT!r})")
    return payload


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights; returns ``(model, checkpoint dict)``."""
    from hierseg.models import create_model

    payload = read_checkpoint(path, map_location)
    kwargs = dict(payload["model"]["kwargs"])
    if payload.get("taxonomy") is not None:
        kwargs["taxonomy"] = Taxonomy(payload["taxonomy"])
    kwargs.pop("backbone_weights", None)  # the weights below replace the pre-trained ones
    model = create_model(payload["model"]["name"], **kwargs)
    model.load_state_dict(payload["state_dict"])
    return model, payload
