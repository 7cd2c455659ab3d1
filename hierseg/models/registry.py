"""timm-style model registry: ``@register_model`` entry points, :func:`create_model`, :func:`list_models`, and what
the engine and the CLI ask of a model before building it (its arguments, its backbone weights) or instead of
training it (:func:`model_info`).

Together with :class:`hierseg.models.base.Segmenter` this module is all the engine and the CLI import from
:mod:`hierseg.models`.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hierseg.core.errors import HiersegError
from hierseg.models.arguments import ArgumentError, check_arguments
from hierseg.models.backbone import weights_source
from hierseg.models.base import Segmenter

__all__ = ["ArgumentError", "UnknownArgument", "accepted_arguments", "build", "check_backbone_weights",
           "check_model_arguments", "create_model", "entrypoint", "list_models", "model_family", "model_info",
           "register_model"]

_ENTRYPOINTS: dict[str, Callable[..., Segmenter]] = {}
_FAMILY: dict[str, str] = {}


def register_model(fn: Callable[..., Segmenter]) -> Callable[..., Segmenter]:
    """Register an entry point under its function name; its module name is the model family."""
    name = fn.__name__
    if name in _ENTRYPOINTS:
        raise ValueError(f"model {name!r} is registered twice")
    _ENTRYPOINTS[name] = fn
    _FAMILY[name] = fn.__module__.rsplit(".", 1)[-1]
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _ENTRYPOINTS if fnmatch.fnmatch(n, pattern))


def model_family(name: str) -> str:
    return _FAMILY[_entrypoint_name(name)]


def entrypoint(name: str) -> Callable[..., Segmenter]:
    return _ENTRYPOINTS[_entrypoint_name(name)]


def _entrypoint_name(name: str) -> str:
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(name, list(_ENTRYPOINTS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise HiersegError(f"unknown model {name!r}{hint} (`hierseg models list` shows every model)")
    return name


def create_model(name: str, **kwargs: Any) -> Segmenter:
    """Build a registered model: ``create_model("dsspn_resnet101", taxonomy=tax, backbone_weights="r101.pth")``.

    Keyword arguments override the entry point's defaults; an unknown one is a :class:`HiersegError` that lists the
    accepted names.
    """
    fn = entrypoint(name)
    try:
        check_model_arguments(name, kwargs)
    except UnknownArgument as exc:
        raise HiersegError(f"model {name!r} has no argument {exc.key!r}; it accepts: {', '.join(exc.accepted)}") from None
    except ArgumentError as exc:
        raise HiersegError(f"model {name!r}: {exc}") from None
    return fn(**kwargs)


def accepted_arguments(name: str) -> list[str]:
    """Names of the keyword arguments an entry point (and the model class behind it) accepts."""
    fn = entrypoint(name)
    names = [p for p, v in inspect.signature(fn).parameters.items() if v.kind is not v.VAR_KEYWORD]
    cls = typing.get_type_hints(fn).get("return")  # entry points are annotated with the class they build
    if inspect.isclass(cls):
        names += [p for p, v in inspect.signature(cls).parameters.items()
                  if v.kind is not v.VAR_KEYWORD and p not in names]
    return names


class UnknownArgument(ArgumentError):
    """A keyword argument the model does not take; ``accepted`` lists the ones it does."""

    def __init__(self, name: str, key: str, accepted: list[str]) -> None:
        super().__init__(key, f"{name} has no such argument; it accepts: {', '.join(accepted)}")
        self.accepted = accepted


def check_model_arguments(name: str, kwargs: dict[str, Any]) -> None:
    """Raise :class:`ArgumentError` (``key``, ``reason``) for the first of ``kwargs`` the model does not take
    (:class:`UnknownArgument`) or of the wrong type or range: the one check behind :func:`create_model` and a
    training config's ``model.kwargs``."""
    accepted = accepted_arguments(name)
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        raise UnknownArgument(name, unknown[0], accepted)
    check_arguments(entrypoint(name), kwargs)


def check_backbone_weights(weights: str | Path) -> None:
    """A one-line error unless ``weights`` names a local file or hub weights (nothing is downloaded here)."""
    weights_source(weights)


def build(name: str, kwargs: dict[str, Any], device: str = "meta") -> Segmenter:
    """Build on the meta device (no memory, no initialisation cost) or the CPU."""
    with torch.device(device):
        return create_model(name, **kwargs)


def model_info(name: str, overrides: dict[str, Any] | None = None, dataset: str | None = None,
               device: str = "meta") -> dict[str, Any]:
    """``hierseg models info``: the model's name and family, then what it describes of itself (parameter counts and
    each family's own figures), as a flat dict; a flat model is built for ``dataset`` unless told otherwise."""
    kwargs = dict(overrides or {})
    accepted = accepted_arguments(name)
    if dataset is not None and "datasets" in accepted and "datasets" not in kwargs and "num_classes" not in kwargs:
        kwargs["datasets"] = [dataset]
    model = build(name, kwargs, device)
    info = {"model": name, "family": model_family(name), **model.describe(dataset)}
    if dataset is not None and dataset not in model.label_spaces:
        raise HiersegError(f"model {name!r} cannot predict {dataset!r}")
    return info
