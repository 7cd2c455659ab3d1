"""Checkpoints: one file holds everything needed to rebuild the model and resume training, and loading it runs
no code and uses nothing of it before a digest over all of it has been checked.

Format ``hierseg-checkpoint/2``: a `safetensors <https://github.com/huggingface/safetensors>`_ file. Its tensors are
every tensor of the payload (weights, optimiser buffers, RNG states; NumPy arrays as bytes), named by their path in
it; its metadata holds

- ``format``: ``"hierseg-checkpoint/2"``;
- ``payload``: JSON of everything else, with ``{"$tensor": NAME}`` where a tensor was (and ``$ndarray``,
  ``$tuple``, ``$items`` for NumPy arrays, tuples and mappings with non-string keys, so a resume gets back exactly
  what was saved):

  - ``model``: ``{"name": registered model name, "kwargs": JSON-able create_model arguments}``;
  - ``taxonomy``: the taxonomy artifact (a dict), so a checkpoint is self-contained;
  - ``state_dict``: the model weights (unwrapped from DDP), and ``state_dict_versions``, torch's per-module versions;
  - ``training``: optional resume state (optimiser, schedule, sampler position, RNG states, step, epoch, config);
    a finished stage's checkpoint keeps only ``config``, ``stage``, ``step`` and ``done``;

- ``digest``: ``sha256:HEX`` over the format, the payload text and every tensor (name, dtype, shape, bytes, in name
  order): the whole content. Reading checks it on the file's bytes before the payload is parsed or a tensor built,
  so a flipped byte, an edited tree or model keyword, or a renamed tensor is an error naming the file.

Reading never unpickles. A file without a digest (format 2 with it removed, or ``hierseg-checkpoint/1``, the pickle
written by hierseg up to 0.2) is refused with one line unless the caller trusts it (``trust=True``, the CLI's
``--trust-checkpoint``); even then a pickle is read with torch's weights-only unpickler, which builds tensors and
plain containers only. Every write is atomic (temporary file in the same folder, then ``os.replace``) and never
follows a link.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_bytes, read_bytes
from hierseg.core.jsontext import parse_json
from hierseg.engine.distributed import unwrap
from hierseg.models.base import Segmenter
from hierseg.taxonomy.tree import Taxonomy

FORMAT = "hierseg-checkpoint/2"
LEGACY_FORMAT = "hierseg-checkpoint/1"
TRUST_HINT = "pass --trust-checkpoint (trust=True) only if you trust where the file came from"
_MAX_HEADER = 100 << 20  # safetensors' own bound on its header
# safetensors' names of the dtypes a checkpoint holds
_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
           torch.bool: "BOOL"}
_ITEMSIZE = {name: torch.empty((), dtype=dtype).element_size() for dtype, name in _DTYPES.items()}


def save_checkpoint(path: str | Path, name: str, kwargs: dict[str, Any], model: nn.Module,
                    taxonomy: Taxonomy | None = None, training: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically; ``model`` may be DDP-wrapped."""
    module = unwrap(model)
    state = module.state_dict()
    if isinstance(module, Segmenter):
        kwargs = {**kwargs, **module.recorded_kwargs()}
    payload = {"model": {"name": name, "kwargs": kwargs},
               "taxonomy": taxonomy.artifact if taxonomy is not None else None,
               "state_dict": dict(state), "state_dict_versions": dict(getattr(state, "_metadata", None) or {}),
               "training": training}
    return write_payload(path, payload)


def write_payload(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (a dict of JSON-able values, tuples, tensors and NumPy arrays) as a checkpoint file."""
    return atomic_write_bytes(path, encode_payload(payload))


def encode_payload(payload: dict[str, Any], digest: bool = True) -> bytes:
    """The bytes of a checkpoint file holding ``payload`` (``digest=False``: without its digest, as a file with the
    digest removed would be)."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    text = json.dumps(_encode({k: v for k, v in payload.items() if k not in ("format", "digest")}, "", tensors,
                              set()), allow_nan=True, separators=(",", ":"))
    metadata = {"format": FORMAT, "payload": text}
    if digest:
        metadata["digest"] = "sha256:" + _digest(text, {n: _tensor_record(t) for n, t in tensors.items()})
    return save(tensors, metadata=metadata)


def _encode(node: Any, where: str, tensors: dict[str, torch.Tensor], storages: set[int]) -> Any:
    if isinstance(node, torch.Tensor):
        tensor = node.detach().cpu().contiguous()
        if tensor.dtype not in _DTYPES:
            raise HiersegError(f"checkpoint: cannot store the {tensor.dtype} tensor at {where or '/'}")
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in storages or not tensor.numel():
            tensor = tensor.clone()  # safetensors holds each storage once
        storages.add(tensor.untyped_storage().data_ptr())
        name = where if where and where not in tensors else f"{where}#{len(tensors)}"
        tensors[name] = tensor
        return {"$tensor": name}
    if isinstance(node, np.ndarray):
        array = np.ascontiguousarray(node)
        if array.dtype.hasobject:
            raise HiersegError(f"checkpoint: cannot store the object array at {where or '/'}")
        ref = _encode(torch.from_numpy(array.reshape(-1).view(np.uint8).copy()), where, tensors, storages)
        return {"$ndarray": ref["$tensor"], "dtype": array.dtype.str, "shape": list(array.shape)}
    if isinstance(node, np.generic):
        return node.item()
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if isinstance(node, tuple):
        return {"$tuple": [_encode(v, f"{where}/{i}", tensors, storages) for i, v in enumerate(node)]}
    if isinstance(node, list):
        return [_encode(v, f"{where}/{i}", tensors, storages) for i, v in enumerate(node)]
    if isinstance(node, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in node):
            return {k: _encode(v, f"{where}/{k}", tensors, storages) for k, v in node.items()}
        return {"$items": [[_encode(k, f"{where}/key", tensors, storages),
                            _encode(v, f"{where}/{k}", tensors, storages)] for k, v in node.items()]}
    if isinstance(node, Path):
        return str(node)
    raise HiersegError(f"checkpoint: cannot store a {type(node).__name__} (at {where or '/'}); a checkpoint holds "
                       "tensors, arrays and JSON values")


def _tensor_record(tensor: torch.Tensor) -> tuple[str, list[int], memoryview]:
    data = tensor.reshape(-1).view(torch.uint8).numpy() if tensor.numel() else np.zeros(0, np.uint8)
    return _DTYPES[tensor.dtype], list(tensor.shape), memoryview(data)


def _digest(text: str, records: dict[str, tuple[str, list[int], memoryview]]) -> str:
    """SHA-256 over the whole content: the format, the payload text, and each tensor's name, dtype, shape, bytes."""
    digest = hashlib.sha256(f"{FORMAT}\n".encode())
    digest.update(text.encode("utf-8"))
    for name in sorted(records):
        dtype, shape, data = records[name]
        digest.update(f"\n{name}|{dtype}|{shape}|{len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    trust: bool = False) -> dict[str, Any]:
    """The payload of checkpoint ``path`` (``model``, ``taxonomy``, ``state_dict``, ``training``, ``format`` and
    ``digest``), its digest checked first. ``trust``: also read a file without a digest (see the module's doc)."""
    path = Path(path)
    data = read_bytes(path, "checkpoint", limit=None)  # a FIFO is refused instead of blocking
    if data[:4] == b"PK\x03\x04":  # a zip: torch.save's format, which hierseg wrote up to 0.2
        payload = _read_legacy(path, data, trust)
    else:
        payload = _read_safetensors(path, data, trust)
    if torch.device(map_location).type != "cpu":
        payload = _to_device(payload, torch.device(map_location))
    return payload


def _damaged(path: Path, why: str) -> HiersegError:
    return HiersegError(f"{path}: not a readable hierseg checkpoint ({why}); the file is damaged or not a checkpoint")


def _read_safetensors(path: Path, data: bytes, trust: bool) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    if len(data) < 8:
        raise _damaged(path, f"{len(data)} bytes")
    size = int.from_bytes(data[:8], "little")
    if not 2 <= size <= min(_MAX_HEADER, len(data) - 8):
        raise _damaged(path, "no safetensors header")
    try:
        header = parse_json(data[8:8 + size].decode("utf-8"), str(path), "checkpoint header")
    except (UnicodeDecodeError, HiersegError):
        raise _damaged(path, "its header is not JSON") from None
    metadata = header.pop("__metadata__", None) if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or not isinstance(metadata.get("payload"), str):
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise HiersegError(f"{path}: not a hierseg checkpoint (format {found!r}, not {FORMAT!r})")
    text = metadata["payload"]
    saved = metadata.get("digest")
    if saved is None:
        if not trust:
            raise HiersegError(f"{path}: has no digest, so nothing says it is the file hierseg wrote; {TRUST_HINT}")
    else:
        records = _header_records(path, header, memoryview(data)[8 + size:])
        if not isinstance(saved, str) or not saved.startswith("sha256:"):
            raise HiersegError(f"{path}: unknown digest {saved!r}; the file is damaged or from a newer hierseg")
        if _digest(text, records) != saved.removeprefix("sha256:"):
            raise HiersegError(f"{path}: digest mismatch: its content (weights, tree, model keywords or training "
                               "state) is not what was saved; the file is corrupt or was edited: use another copy "
                               "or an earlier checkpoint")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise _damaged(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    try:
        payload = _decode(parse_json(text, str(path), "checkpoint payload"), tensors)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise _damaged(path, f"its payload does not decode: {type(exc).__name__}") from None
    return _checked(path, {**payload, "format": FORMAT, "digest": saved})


def _header_records(path: Path, header: dict[str, Any], buffer: memoryview) -> dict[str, tuple[str, list[int], memoryview]]:
    """Each tensor's dtype, shape and bytes as the header places them, every field checked against the buffer."""
    records = {}
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (dtype in _ITEMSIZE and all(isinstance(d, int) and d >= 0 for d in shape)
                  and isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(buffer)
                  and end - start == math.prod(shape) * _ITEMSIZE[dtype])
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise _damaged(path, f"tensor {name!r} is not where its header says")
        records[name] = (dtype, list(shape), buffer[start:end])
    return records


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "$tensor" in node:
        return tensors[node["$tensor"]]
    if "$ndarray" in node:
        dtype = np.dtype(node["dtype"])
        if dtype.hasobject:
            raise ValueError("object array")
        return np.frombuffer(tensors[node["$ndarray"]].numpy().tobytes(), dtype).reshape(node["shape"]).copy()
    if "$tuple" in node:
        return tuple(_decode(v, tensors) for v in node["$tuple"])
    if "$items" in node:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in node["$items"]}
    return {k: _decode(v, tensors) for k, v in node.items()}


def _checked(path: Path, payload: Any) -> dict[str, Any]:
    """The payload's shape: what the loaders rely on, one line naming the field otherwise."""
    model = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not isinstance(model.get("kwargs"), dict):
        raise HiersegError(f"{path}: not a hierseg checkpoint (model must hold a name and kwargs)")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise HiersegError(f"{path}: not a hierseg checkpoint (state_dict must map names to tensors)")
    for key in ("taxonomy", "training"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise HiersegError(f"{path}: not a hierseg checkpoint ({key} must be a mapping or null)")
    versions = payload.pop("state_dict_versions", None)
    if isinstance(versions, dict):  # torch's per-module state versions, as torch.save keeps them
        from collections import OrderedDict

        state = OrderedDict(state)
        state._metadata = OrderedDict(versions)  # type: ignore[attr-defined]
        payload["state_dict"] = state
    return payload


def _read_legacy(path: Path, data: bytes, trust: bool) -> dict[str, Any]:
    """``hierseg-checkpoint/1`` (a pickle): refused unless trusted, then read with torch's weights-only unpickler and
    an allow-list of the NumPy types its RNG states need (no other class, no function can be named)."""
    import zipfile

    try:  # the zip's directory, read without unpickling anything: is it torch.save's at all?
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            pickled = any(name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        pickled = False
    if not pickled:
        raise _damaged(path, "a zip file without torch's data.pkl")
    if not trust:
        raise HiersegError(f"{path}: a checkpoint of hierseg 0.2 or earlier (a pickle, with no digest over all of "
                           f"its content); {TRUST_HINT}: it is then read without running code, and a run resumed "
                           "from it or a stage it finishes writes the current format")
    allowed = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), type(np.dtype(np.float64))]
    core = getattr(np, "_core", None) or np.core
    allowed.append(core.multiarray._reconstruct)
    try:
        with torch.serialization.safe_globals(allowed):
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (pickle and zip errors of every kind mean the same to the user)
        import re

        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if named:  # torch's refusal of a class or function a checkpoint never needs (os.system, ...)
            raise HiersegError(f"{path}: names {named.group(1)}, which no checkpoint needs; refused without running "
                               "it (the file is not a hierseg checkpoint, or was made to run code)") from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HiersegError(f"{path}: cannot be read safely ({type(exc).__name__}: {first[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != LEGACY_FORMAT:
        raise HiersegError(f"{path}: not a hierseg checkpoint (no format {FORMAT!r} or {LEGACY_FORMAT!r})")
    payload.pop("checksum", None)
    return _checked(path, {**payload, "format": LEGACY_FORMAT, "digest": None})


def _to_device(node: Any, device: torch.device) -> Any:
    if isinstance(node, torch.Tensor):
        return node.to(device)
    if isinstance(node, dict):
        out = {k: _to_device(v, device) for k, v in node.items()}
        if hasattr(node, "_metadata"):
            from collections import OrderedDict

            out = OrderedDict(out)
            out._metadata = node._metadata  # type: ignore[attr-defined]
        return out
    if isinstance(node, list | tuple):
        return type(node)(_to_device(v, device) for v in node)
    return node


def trained_datasets(payload: dict[str, Any]) -> tuple[str, ...] | None:
    """The datasets a checkpoint's run trained on (``data.datasets`` of its config); None when it does not say."""
    config = (payload.get("training") or {}).get("config")
    try:
        return tuple(d["name"] for d in config["data"]["datasets"])
    except (KeyError, TypeError):
        return None


# What a checkpoint that does not record an argument (``Segmenter.recorded_kwargs``) was built with: the default of
# the hierseg that wrote it, not today's.
_UNRECORDED: dict[str, dict[str, Any]] = {"dsspn": {"classifier": "sigmoid"}}


def load_model(path: str | Path, map_location: str | torch.device = "cpu", *,
               trust: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights; returns ``(model, checkpoint dict)``."""
    from hierseg.models.registry import create_model, model_family

    payload = read_checkpoint(path, map_location, trust=trust)
    kwargs = {**_UNRECORDED.get(model_family(payload["model"]["name"]), {}), **payload["model"]["kwargs"]}
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


def load_backbone(model: nn.Module, path: str | Path, *, trust: bool = False) -> int:
    """Copy the ``backbone.*`` weights of checkpoint ``path`` into ``model`` (the head stays as initialised).

    This is the paper's "finetune" regime (DSSPN 4.3): a run on one dataset starts from another run's ConvNet.
    Returns the number of tensors copied; a backbone of another shape is a one-line error.
    """
    source = {k: v for k, v in read_checkpoint(path, trust=trust)["state_dict"].items() if k.startswith("backbone.")}
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
