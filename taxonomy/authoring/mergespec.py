"""The reviewable merge specification (``specs/merge.yaml``), loaded with the line of every entry."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hierseg.core.errors import HiersegError
from hierseg.core.io import read_text
from hierseg.core.yamltext import compose_yaml, yaml_line, yaml_problem, yaml_value

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_MARKS = ("not_below", "shares_synset")
_ADDED_KEYS = {"id", "parent", "synset", "source", "adopts", "reason", "exception", "name", "exempt", *_MARKS}
_MOVED_KEYS = {"id", "parent", "reason", "exception", *_MARKS}
_KEPT_KEYS = {"id", "reason", "exception", *_MARKS}
_REMOVED_KEYS = {"id", "reason", "lift"}
_OVERLAP_KEYS = {"label", "with", "reason"}
_LABEL_REF = re.compile(r"^([a-z][a-z0-9_]*):(\d+)$")


def concept_id(name: str) -> str:
    """The stable string id of a COCO-Stuff node name: lower snake case (``wall-brick`` -> ``wall_brick``)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class AddedConcept:
    id: str
    parent: str
    synset: str | None
    source: str
    line: int
    name: str = ""
    adopts: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()
    reason: str | None = None
    exception: bool = False
    not_below: dict[str, str] = field(default_factory=dict)
    shares_synset: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MovedConcept:
    """An existing (COCO-Stuff) concept the merge places under another parent; checked like an added one."""

    id: str
    parent: str
    reason: str
    line: int
    exception: bool = False
    not_below: dict[str, str] = field(default_factory=dict)
    shares_synset: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KeptConcept:
    """A COCO-Stuff concept left where COCO-Stuff's hierarchy puts it, with the marks its WordNet check needs."""

    id: str
    reason: str
    line: int
    exception: bool = False
    not_below: dict[str, str] = field(default_factory=dict)
    shares_synset: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RemovedConcept:
    """An existing (COCO-Stuff) concept the merge drops: left without children, or with ``lift`` its children move up
    to its parent, in its place."""

    id: str
    reason: str
    line: int
    lift: bool = False


@dataclass(frozen=True)
class Overlap:
    """Two labels of two datasets whose definitions overlap without one containing the other."""

    label: tuple[str, int]
    other: tuple[str, int]
    reason: str
    line: int


@dataclass(frozen=True)
class LabelMapping:
    dataset: str
    label_id: int
    concept: str
    line: int


@dataclass
class MergeSpec:
    path: Path
    root: str
    added: list[AddedConcept] = field(default_factory=list)
    moved: list[MovedConcept] = field(default_factory=list)
    removed: list[RemovedConcept] = field(default_factory=list)
    kept: list[KeptConcept] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    labels: list[LabelMapping] = field(default_factory=list)
    void: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)

    def where(self, line: int) -> str:
        return f"{self.path.name}:{line}"


def _marks(entry: dict, where: str) -> dict[str, dict[str, str]]:
    """``not_below`` / ``shares_synset``: concept id -> the one-line reason the mark is right."""
    marks = {}
    for key in _MARKS:
        value = entry.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                  for k, v in value.items()):
            raise HiersegError(f"{where}: {key} must map concept ids to a reason")
        marks[key] = dict(value)
    return marks


def _label_ref(value: object, where: str) -> tuple[str, int]:
    match = _LABEL_REF.match(value) if isinstance(value, str) else None
    if match is None:
        raise HiersegError(f"{where}: {value!r} is not a label reference 'dataset:id' (e.g. cityscapes:22)")
    return match.group(1), int(match.group(2))


def _entries(path: Path, node: yaml.Node, section: str, keys: set[str]) -> list[tuple[dict, int, str]]:
    if not isinstance(node, yaml.SequenceNode):
        raise HiersegError(f"{path}:{node.start_mark.line + 1}: {section!r} must be a list")
    out = []
    for item in node.value:
        line = item.start_mark.line + 1
        entry = yaml_value(item)
        where = f"{path.name}:{line}"
        if not isinstance(entry, dict):
            raise HiersegError(f"{where}: each entry of {section!r} must be a mapping")
        unknown = set(entry) - keys
        if unknown:
            raise HiersegError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(entry.get("id"), str) or not entry["id"]:
            raise HiersegError(f"{where}: field 'id' is required and must be a string")
        out.append((entry, line, where))
    return out


def _overlaps(path: Path, node: yaml.Node) -> list[Overlap]:
    """``overlaps``: ``{label: dataset:id, with: [dataset:id, ...], reason}``, one pair per ``with`` entry."""
    if not isinstance(node, yaml.SequenceNode):
        raise HiersegError(f"{path}:{node.start_mark.line + 1}: 'overlaps' must be a list")
    out = []
    for item in node.value:
        line = item.start_mark.line + 1
        where = f"{path.name}:{line}"
        entry = yaml.safe_load(yaml.serialize(item))
        if not isinstance(entry, dict):
            raise HiersegError(f"{where}: each entry of 'overlaps' must be a mapping")
        unknown = set(entry) - _OVERLAP_KEYS
        if unknown:
            raise HiersegError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
            raise HiersegError(f"{where}: an overlap needs a one-line 'reason'")
        others = entry.get("with")
        if not isinstance(others, list) or not others:
            raise HiersegError(f"{where}: 'with' must list the labels it overlaps ('dataset:id')")
        label = _label_ref(entry.get("label"), where)
        out.extend(Overlap(label, _label_ref(other, where), entry["reason"], line) for other in others)
    return out


def _mapping(node: yaml.Node, where: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise HiersegError(f"{where}: expected a mapping")
    return node.value


def load_merge_spec(path: str | Path) -> MergeSpec:
    path = Path(path)
    try:
        text = read_text(path, "merge spec")
        root_node = compose_yaml(text)
    except yaml.YAMLError as exc:
        line = yaml_line(exc)
        at = f":{line}" if line is not None else ""
        raise HiersegError(f"{path}{at}: not valid YAML ({yaml_problem(exc)})") from None
    if root_node is None:
        raise HiersegError(f"{path}: empty merge spec")
    sections = {key.value: value for key, value in _mapping(root_node, str(path))}
    for required in ("root", "added", "labels"):
        if required not in sections:
            raise HiersegError(f"{path}: missing top-level key {required!r}")
    root = sections["root"]
    if not isinstance(root, yaml.ScalarNode) or root.tag != "tag:yaml.org,2002:str" or not root.value:
        raise HiersegError(f"{path}:{root.start_mark.line + 1}: 'root' must be a concept id (a string)")
    spec = MergeSpec(path=path, root=root.value)

    for entry, line, where in _entries(path, sections["added"], "added", _ADDED_KEYS):
        for key in ("parent", "source"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise HiersegError(f"{where}: field {key!r} is required and must be a string")
        if not _ID.match(entry["id"]):
            raise HiersegError(f"{where}: id {entry['id']!r} must be lower snake case")
        synset = entry.get("synset")
        if synset is not None and not isinstance(synset, str):
            raise HiersegError(f"{where}: synset must be a WordNet name like 'dog.n.01' or null")
        spec.added.append(
            AddedConcept(
                id=entry["id"], parent=entry["parent"], synset=synset, source=entry["source"], line=line,
                name=entry.get("name") or entry["id"].replace("_", " "),
                adopts=tuple(entry.get("adopts") or ()), exempt=tuple(entry.get("exempt") or ()),
                reason=entry.get("reason"),
                exception=bool(entry.get("exception", False)), **_marks(entry, where),
            )
        )
    if "moved" in sections:
        for entry, line, where in _entries(path, sections["moved"], "moved", _MOVED_KEYS):
            if not isinstance(entry.get("parent"), str) or not isinstance(entry.get("reason"), str):
                raise HiersegError(f"{where}: a moved concept needs 'parent' and a one-line 'reason'")
            spec.moved.append(MovedConcept(entry["id"], entry["parent"], entry["reason"], line,
                                           bool(entry.get("exception", False)), **_marks(entry, where)))
    if "removed" in sections:
        for entry, line, where in _entries(path, sections["removed"], "removed", _REMOVED_KEYS):
            if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
                raise HiersegError(f"{where}: a removed concept needs a one-line 'reason'")
            if not isinstance(entry.get("lift", False), bool):
                raise HiersegError(f"{where}: lift must be true or false")
            spec.removed.append(RemovedConcept(entry["id"], entry["reason"], line, entry.get("lift", False)))
    if "kept" in sections:
        for entry, line, where in _entries(path, sections["kept"], "kept", _KEPT_KEYS):
            if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
                raise HiersegError(f"{where}: a kept concept needs a one-line 'reason'")
            spec.kept.append(KeptConcept(entry["id"], entry["reason"], line, bool(entry.get("exception", False)),
                                         **_marks(entry, where)))
    if "overlaps" in sections:
        spec.overlaps = _overlaps(path, sections["overlaps"])

    for dataset_node, table in _mapping(sections["labels"], f"{path}: labels"):
        for key, value in _mapping(table, f"{path}:{table.start_mark.line + 1}"):
            line = key.start_mark.line + 1
            try:
                label_id = int(key.value)
            except ValueError:
                raise HiersegError(f"{path.name}:{line}: label id {key.value!r} is not an integer") from None
            if not isinstance(value, yaml.ScalarNode) or not value.value:
                raise HiersegError(f"{path.name}:{line}: label {label_id} must map to one concept id")
            spec.labels.append(LabelMapping(dataset_node.value, label_id, value.value, line))

    if "void" in sections:
        for dataset_node, table in _mapping(sections["void"], f"{path}: void"):
            entries = spec.void.setdefault(dataset_node.value, {})
            for key, value in _mapping(table, f"{path}:{table.start_mark.line + 1}"):
                entries[int(key.value)] = (str(value.value), key.start_mark.line + 1)
    return spec
