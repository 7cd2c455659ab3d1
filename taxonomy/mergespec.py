"""The reviewable merge specification (``specs/merge.yaml``), loaded with the line of every entry."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.io import read_text

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_ADDED_KEYS = {"id", "parent", "synset", "source", "adopts", "reason", "exception", "name", "exempt"}


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
    labels: list[LabelMapping] = field(default_factory=list)
    void: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)

    def where(self, line: int) -> str:
        return f"{self.path.name}:{line}"



def _mapping(node: yaml.Node, where: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise HiersegError(f"{where}: expected a mapping")
    return node.value


def load_merge_spec(path: str | Path) -> MergeSpec:
    path = Path(path)
    try:
        text = read_text(path, "merge spec")
        root_node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise HiersegError(f"{path}{at}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if root_node is None:
        raise HiersegError(f"{path}: empty merge spec")
    sections = {key.value: value for key, value in _mapping(root_node, str(path))}
    for required in ("root", "added", "labels"):
        if required not in sections:
            raise HiersegError(f"{path}: missing top-level key {required!r}")
    spec = MergeSpec(path=path, root=str(sections["root"].value))

    if not isinstance(sections["added"], yaml.SequenceNode):
        raise HiersegError(f"{path}:{sections['added'].start_mark.line + 1}: 'added' must be a list")
    for item in sections["added"].value:
        line = item.start_mark.line + 1
        entry = yaml.safe_load(yaml.serialize(item))
        where = f"{path.name}:{line}"
        if not isinstance(entry, dict):
            raise HiersegError(f"{where}: each added concept must be a mapping")
        unknown = set(entry) - _ADDED_KEYS
        if unknown:
            raise HiersegError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        for key in ("id", "parent", "source"):
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
                exception=bool(entry.get("exception", False)),
            )
        )

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
