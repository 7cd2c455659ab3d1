"""YAML: the one loader every file and ``--set`` value goes through, where a parse error is and what it says, and
``KEY=VALUE`` assignments (``--set``) whose value is YAML, so ``lr=1e-3`` is a number and ``datasets=[cityscapes,
mapillary]`` a list.

The loader (:func:`load_yaml`, :func:`compose_yaml`, :func:`yaml_value`) is PyYAML's safe loader with what a
config or spec never needs taken out, so that a few kB of YAML cannot become gigabytes or a silent override:

- aliases (``*name``) are refused: an alias bomb expands nothing, and every value is written where it applies;
- a key given twice in one mapping is refused, naming both lines (PyYAML keeps the last one without a word);
- only the plain types are accepted (strings, numbers, booleans, null, lists, mappings): ``!!python/...`` and any
  other tag is refused, and a date stays a string;
- nesting is bounded (:data:`MAX_DEPTH` levels), so a deep document is an error, not a ``RecursionError``.

Every refusal is a :class:`yaml.MarkedYAMLError` with the line, so callers word it like any parse error.
The commands that read them word their own messages (a config names its file, ``models info`` the pair); what a
YAML error means is worked out once, here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import yaml

from hierseg.core.errors import HiersegError

MAX_DEPTH = 64
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map"))


class RefusedYAML(yaml.MarkedYAMLError):
    """YAML the loader does not take (an alias, a repeated key, a tag, too deep), at a line."""

    def __init__(self, mark: yaml.Mark | None, problem: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _Loader(yaml.SafeLoader):
    """The pure-Python safe loader (the C one cannot be hooked), with the checks of this module."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise RefusedYAML(event.start_mark, f"alias *{event.anchor} is not accepted; write the value out where "
                                                "it applies")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RefusedYAML(self.peek_event().start_mark, f"nested more than {MAX_DEPTH} levels deep")
        node = super().compose_node(parent, index)
        self.depth -= 1
        if node.tag not in _PLAIN_TAGS:
            raise RefusedYAML(node.start_mark, f"tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not accepted "
                                               "(only strings, numbers, booleans, null, lists and mappings)")
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key, _ in node.value:
                ident = _key_identity(key)
                if ident in seen:
                    raise RefusedYAML(key.start_mark, f"key {key.value!r} given twice (first on line "
                                                      f"{seen[ident].start_mark.line + 1})")
                seen[ident] = key
        return node


    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # an int of 5000 digits, say: at its own line
            raise RefusedYAML(node.start_mark, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


# A date is a string here: nothing reads dates, and `2024-13-45` would be a constructor error.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _key_identity(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        if node.tag.endswith(":int"):
            try:
                return ("int", int(node.value.replace("_", ""), 0) if node.value[:2].lower() in ("0x", "0o", "0b")
                        else int(node.value.replace("_", "")))
            except ValueError:
                pass
        return (node.tag, node.value)
    return id(node)


def _construct(loader: _Loader, node: yaml.Node) -> Any:
    try:
        return loader.construct_document(node)
    except (ValueError, OverflowError) as exc:  # an int of 5000 digits, say
        raise RefusedYAML(node.start_mark, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of one YAML document (None when empty), with the checks above; lines stay on the nodes."""
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def yaml_value(node: yaml.Node) -> Any:
    """The Python value of a node :func:`compose_yaml` returned."""
    loader = _Loader("")
    try:
        return _construct(loader, node)
    finally:
        loader.dispose()


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with the checks above: the one way the project reads YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _construct(loader, node)
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike[str], what: str = "file") -> Any:
    """A YAML file through :func:`load_yaml` (read with :func:`hierseg.core.io.read_text`: FIFO-safe, bounded);
    a problem is one line ``PATH:LINE: not valid YAML (...)``."""
    from hierseg.core.io import read_text

    text = read_text(path, what)
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        line = yaml_line(exc)
        raise HiersegError(f"{path}{f':{line}' if line else ''}: not valid YAML ({yaml_problem(exc)})") from None


def yaml_line(exc: yaml.YAMLError) -> int | None:
    """The 1-based line a parse error points at, or None when PyYAML gives no position."""
    mark = getattr(exc, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong, in the parser's words (``mapping values are not allowed here``), on one line."""
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def split_assignment(item: str) -> tuple[str, str] | None:
    """``"a.b = 3"`` -> ``("a.b", " 3")``; None when there is no ``=`` or no key before it."""
    key, sep, text = item.partition("=")
    key = key.strip()
    return (key, text) if sep and key else None


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["m=32", "datasets=[cityscapes, mapillary]"]`` -> ``{"m": 32, "datasets": [...]}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        split = split_assignment(pair)
        if split is None:
            raise HiersegError(f"--set {pair!r}: expected key=value")
        key, text = split
        try:
            out[key] = load_yaml(text)
        except yaml.YAMLError as exc:
            raise HiersegError(f"--set {pair!r}: value is not valid YAML ({yaml_problem(exc)})") from None
    return out
