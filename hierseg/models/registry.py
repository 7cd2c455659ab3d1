"""timm-style model registry: ``@register_model`` entry points, :func:`create_model`, :func:`list_models`."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from hierseg.core.errors import HiersegError

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_FAMILY: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
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


def entrypoint(name: str) -> Callable[..., nn.Module]:
    return _ENTRYPOINTS[_entrypoint_name(name)]


def _entrypoint_name(name: str) -> str:
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(name, list(_ENTRYPOINTS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise HiersegError(f"unknown model {name!r}{hint} (`hierseg models list` shows every model)")
    return name


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model: ``create_model("dsspn_resnet101", taxonomy=tax, backbone_weights="r101.pth")``.

    Keyword arguments override the entry point's defaults; an unknown one is a :class:`HiersegError` that lists the
    accepted names.
    """
    fn = entrypoint(name)
    accepted = accepted_arguments(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise HiersegError(f"model {name!r} has no argument {unknown[0]!r}; it accepts: {', '.join(accepted)}")
    from hierseg.models.arguments import check_arguments

    try:
        check_arguments(name, kwargs)
    except HiersegError as exc:
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
