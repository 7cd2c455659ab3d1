"""Checkpoints: one file holds everything needed to rebuild the model and resume training.

Layout (a ``torch.save`` dict):

- ``format``: ``"hierseg-checkpoint/1"``;
- ``model``: ``{"name": registered model name, "kwargs": JSON-able create_model arguments}``;
- ``taxonomy``: the taxonomy artifact (a dict), so a checkpoint is self-contained;
- ``state_dict``: the model weights (unwrapped from DDP);
- ``training``: optional resume state (optimiser, schedule, sampler position, RNG states, step, epoch, config);
  a finished stage's checkpoint keeps only ``config``, ``stage``, ``step`` and ``done``;
- ``checksum``: ``{"algorithm": "sha256", "tensors": N, "digest": hex}`` over every tensor of the payload (its
  path in the payload, dtype, shape and bytes, in payload order). Loading recomputes it, so a flipped byte in
  the weights is an error naming the file instead of a silently different model. Checkpoints written before
  checksums existed load unchecked.

Every write is atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_bytes, check_regular
from hierseg.engine.distributed import unwrap
from hierseg.taxonomy.tree import Taxonomy

FORMAT = "hierseg-checkpoint/1"


def save_checkpoint(path: str | Path, name: str, kwargs: dict[str, Any], model: nn.Module,
                    taxonomy: Taxonomy | None = None, training: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically; ``model`` may be DDP-wrapped."""
    module = unwrap(model)
    payload = {"format": FORMAT, "model": {"name": name, "kwargs": kwargs},
               "taxonomy": taxonomy.artifact if taxonomy is not None else None,
               "state_dict": module.state_dict(), "training": training}
    payload["checksum"] = tensor_checksum(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _tensors(node: Any, where: str = "") -> Any:
    """``(path, tensor)`` for every tensor (and NumPy array: RNG states) under ``node``, in payload order."""
    if isinstance(node, torch.Tensor | np.ndarray):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if where or key != "checksum":
                yield from _tensors(value, f"{where}/{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _tensors(value, f"{where}/{i}")


def tensor_checksum(payload: dict[str, Any]) -> dict[str, Any]:
    """SHA-256 over every tensor of a checkpoint payload: path, dtype, shape and the raw bytes."""
    digest, count = hashlib.sha256(), 0
    for where, value in _tensors(payload):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous()
            data = value.reshape(-1).view(torch.uint8).numpy() if value.numel() else b""
        else:
            data = np.ascontiguousarray(value).view(np.uint8).reshape(-1) if value.size else b""
        digest.update(f"{where}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(data)
        count += 1
    return {"algorithm": "sha256", "tensors": count, "digest": digest.hexdigest()}


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    check_regular(path, "checkpoint")  # torch.load would block on a FIFO
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001  (pickle and zip errors of every kind mean the same to the user)
        raise HiersegError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HiersegError(f"{path}: not a hierseg checkpoint (no format {FORMAT!r})")
    saved = payload.get("checksum")
    if saved is not None:
        if not isinstance(saved, dict) or saved.get("algorithm") != "sha256":
            raise HiersegError(f"{path}: unknown checksum {saved!r}; the file is damaged or from a newer hierseg")
        found = tensor_checksum(payload)
        if found["digest"] != saved.get("digest") or found["tensors"] != saved.get("tensors"):
            raise HiersegError(f"{path}: checksum mismatch: its tensors are not the ones that were saved (the file "
                               "is corrupt); use another copy or an earlier checkpoint")
    return payload


def trained_datasets(payload: dict[str, Any]) -> tuple[str, ...] | None:
    """The datasets a checkpoint's run trained on (``data.datasets`` of its config); None when it does not say."""
    config = (payload.get("training") or {}).get("config")
    try:
        return tuple(d["name"] for d in config["data"]["datasets"])
    except (KeyError, TypeError):
        return None


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights; returns ``(model, checkpoint dict)``."""
    from hierseg.models.registry import create_model

    payload = read_checkpoint(path, map_location)
    kwargs = dict(payload["model"]["kwargs"])
    if payload.get("taxonomy") is not None:
        kwargs["taxonomy"] = Taxonomy(payload["taxonomy"])
    kwargs.pop("backbone_weights", None)  # the weights below replace the pre-trained ones
    model = create_model(payload["model"]["name"], **kwargs)
    check_weights_fit(path, payload["model"]["name"], model.state_dict(), payload["state_dict"])
    model.load_state_dict(payload["state_dict"])
    return model, payload


def check_weights_fit(path: str | Path, name: str, own: dict[str, torch.Tensor], saved: dict[str, Any]) -> None:
    """One line naming the first tensor that differs, instead of ``load_state_dict``'s list of every mismatch.

    The usual cause is a model whose structure changed since the file was written: DSSPN checkpoints from before its
    self outputs (hierseg 0.1) hold fewer neurons, with fewer outputs, than the same tree builds now.
    """
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    shapes = [k for k in own if k in saved and tuple(saved[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        return
    if shapes:
        key = shapes[0]
        what = f"{key} is {tuple(saved[key].shape)} in the file but {tuple(own[key].shape)} in {name} as built now"
    elif missing:
        what = f"{len(missing)} tensors of {name} as built now are missing from the file (first: {missing[0]})"
    else:
        what = f"the file holds {len(unexpected)} tensors {name} does not have (first: {unexpected[0]})"
    hint = ("; DSSPN checkpoints written before self outputs were added (hierseg 0.1) cannot be loaded: retrain"
            if name.startswith("dsspn") else "; the checkpoint was written by another version of the model")
    raise HiersegError(f"{path}: its weights do not fit: {what} ({len(shapes)} shapes differ, {len(missing)} "
                       f"missing, {len(unexpected)} unexpected){hint}")


def load_backbone(model: nn.Module, path: str | Path) -> int:
    """Copy the ``backbone.*`` weights of checkpoint ``path`` into ``model`` (the head stays as initialised).

    This is the paper's "finetune" regime (DSSPN 4.3): a run on one dataset starts from another run's ConvNet.
    Returns the number of tensors copied; a backbone of another shape is a one-line error.
    """
    source = {k: v for k, v in read_checkpoint(path)["state_dict"].items() if k.startswith("backbone.")}
    if not source:
        raise HiersegError(f"{path}: holds no backbone.* weights to start from")
    module = unwrap(model)
    own = {k: v for k, v in module.state_dict().items() if k.startswith("backbone.")}
    missing, unexpected = sorted(set(own) - set(source)), sorted(set(source) - set(own))
    if missing or unexpected:
        name = (missing or unexpected)[0]
        raise HiersegError(f"{path}: its backbone does not fit this model ({name} is "
                           f"{'missing from the checkpoint' if missing else 'not in this model'}); "
                           "both runs need the same backbone")
    for key, value in source.items():
        if value.shape != own[key].shape:
            raise HiersegError(f"{path}: {key} is {tuple(value.shape)} there but {tuple(own[key].shape)} here; "
                               "both runs need the same backbone")
    module.load_state_dict(source, strict=False)
    return len(source)


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states, for an exact resume."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # this process's device only: asking for every device would open a context on each GPU from each rank
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
