"""The built concept tree: immutable, loaded from the JSON artifact without WordNet or torch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hierseg.core.errors import HiersegError
from hierseg.core.io import read_text

if TYPE_CHECKING:
    import networkx as nx


def _shipped_dir() -> Path:
    """The folder of the shipped artifacts: ``data/`` of a checkout, ``hierseg/artifacts/`` of an installed wheel."""
    from importlib import resources

    try:
        return Path(str(resources.files("hierseg.artifacts")))
    except ModuleNotFoundError:
        # An editable install made before data/ became the package hierseg.artifacts has no mapping for it;
        # `pip install -e .` adds one. Until then, the checkout's folder is where it would point.
        return Path(__file__).resolve().parent.parent / "data"


SHIPPED = _shipped_dir()
DEFAULT_ARTIFACT = SHIPPED / "taxonomy" / "dsspn359.json"
LABEL_MAP_DIR = SHIPPED / "label_maps"
FORMAT = "hierseg-taxonomy/1"
# The repository root when running from a checkout (its pyproject.toml beside data/); None in an installed wheel,
# where `taxonomy build` must be told where to write (it never writes into site-packages by default).
_CHECKOUT = SHIPPED.name == "data" and (SHIPPED.parent / "pyproject.toml").is_file()
REPO_ROOT: Path | None = SHIPPED.parent if _CHECKOUT else None


def shipped_label_map(dataset: str) -> str:
    """The shipped label map of one dataset (``dataset_id,name,concept,concept_path,ignore,evaluated`` CSV)."""
    path = LABEL_MAP_DIR / f"{dataset}.csv"
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HiersegError(f"{path}: no shipped label map for {dataset!r} ({exc.strerror})") from None


@dataclass(frozen=True)
class Concept:
    id: str
    name: str
    parent: str | None
    depth: int
    synset: str | None
    definition: str | None
    source: str
    labels: dict[str, tuple[int, ...]]


def read_artifact(path: str | Path) -> dict[str, Any]:
    """Parse an artifact file; a missing file or broken JSON is a one-line :class:`HiersegError`."""
    path = Path(path)
    try:
        data = json.loads(read_text(path, "taxonomy"))
    except json.JSONDecodeError as exc:
        raise HiersegError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("concepts"), list):
        raise HiersegError(f"{path}: not a hierseg taxonomy (no 'concepts' list)")
    return data


def _concept(entry: Any, index: int) -> Concept:
    """One artifact record, its types checked: a malformed record is one line naming it, not a traceback later."""
    where = f"concept {entry.get('id', f'#{index}')}" if isinstance(entry, dict) else f"concept #{index}"
    if not isinstance(entry, dict):
        raise HiersegError(f"{where}: not an object")
    missing = [f for f in ("id", "name", "parent", "depth") if f not in entry]
    if missing:
        raise HiersegError(f"{where}: missing field(s) {', '.join(missing)}")
    if not isinstance(entry["id"], str) or not (entry["parent"] is None or isinstance(entry["parent"], str)):
        raise HiersegError(f"{where}: id and parent must be strings (parent null for the root)")
    if isinstance(entry["depth"], bool) or not isinstance(entry["depth"], int):
        raise HiersegError(f"{where}: depth must be an integer, not {entry['depth']!r}")
    labels = entry.get("labels", {})
    if not isinstance(labels, dict):
        raise HiersegError(f"{where}: labels must map dataset names to lists of label ids, not {labels!r}")
    for dataset, ids in labels.items():
        if not isinstance(ids, list) or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
            raise HiersegError(f"{where}: labels.{dataset} must be a list of non-negative integer ids, not {ids!r}")
    return Concept(id=entry["id"], name=str(entry["name"]), parent=entry["parent"], depth=entry["depth"],
                   synset=entry.get("synset"), definition=entry.get("definition"), source=entry.get("source", ""),
                   labels={k: tuple(v) for k, v in labels.items()})


class Taxonomy:
    """Concepts by stable string id, with parent, children, depth and ancestors.

    Build one with :meth:`load`; run :func:`hierseg.taxonomy.validate.validate_artifact` first on untrusted files.
    """

    def __init__(self, artifact: dict[str, Any]) -> None:
        self.artifact = artifact
        if not isinstance(artifact.get("root"), str) or not isinstance(artifact.get("concepts"), list):
            raise HiersegError("not a hierseg taxonomy (needs a 'root' id and a 'concepts' list)")
        self.root: str = artifact["root"]
        self._concepts: dict[str, Concept] = {}
        self._children: dict[str, list[str]] = {}
        for index, entry in enumerate(artifact["concepts"]):
            concept = _concept(entry, index)
            self._concepts[concept.id] = concept
            self._children.setdefault(concept.id, [])
            if concept.parent is not None:
                self._children.setdefault(concept.parent, []).append(concept.id)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Taxonomy:
        path = path or DEFAULT_ARTIFACT
        try:
            return cls(read_artifact(path))
        except HiersegError as exc:
            message = str(exc)
            raise HiersegError(message if message.startswith(str(path)) else f"{path}: {message}") from None

    def __len__(self) -> int:
        return len(self._concepts)

    def __iter__(self) -> Iterator[Concept]:
        return iter(self._concepts.values())

    def __contains__(self, concept_id: object) -> bool:
        return concept_id in self._concepts

    def __getitem__(self, concept_id: str) -> Concept:
        try:
            return self._concepts[concept_id]
        except KeyError:
            raise HiersegError(f"unknown concept {concept_id!r}") from None

    def children(self, concept_id: str) -> tuple[str, ...]:
        return tuple(self._children[self[concept_id].id])

    def ancestors(self, concept_id: str) -> tuple[str, ...]:
        """From the parent up to the root."""
        out, node = [], self[concept_id]
        while node.parent is not None:
            out.append(node.parent)
            node = self._concepts[node.parent]
        return tuple(out)

    def path(self, concept_id: str) -> tuple[str, ...]:
        """From the root down to ``concept_id``."""
        return tuple(reversed(self.ancestors(concept_id))) + (concept_id,)

    def is_leaf(self, concept_id: str) -> bool:
        return not self._children[self[concept_id].id]

    @property
    def max_depth(self) -> int:
        return max(c.depth for c in self)

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(self.artifact.get("datasets", {}))

    def concept_of(self, dataset: str, label_id: int) -> str | None:
        """The concept a dataset label maps to, or ``None`` for its ignore/void values."""
        return self._label_index.get(dataset, {}).get(label_id)

    def dataset_concepts(self, dataset: str) -> dict[int, str]:
        """Label id -> concept id for one dataset."""
        if dataset not in self.datasets:
            raise HiersegError(f"unknown dataset {dataset!r}; the tree covers {', '.join(self.datasets)}")
        return dict(self._label_index.get(dataset, {}))

    @cached_property
    def _label_index(self) -> dict[str, dict[int, str]]:
        index: dict[str, dict[int, str]] = {}
        for concept in self:
            for dataset, ids in concept.labels.items():
                for label_id in ids:
                    index.setdefault(dataset, {})[label_id] = concept.id
        return index

    @cached_property
    def graph(self) -> nx.DiGraph:
        """A networkx ``DiGraph`` (parent -> child edges) with each concept's fields as node attributes."""
        import networkx as nx

        graph = nx.DiGraph()
        for concept in self:
            graph.add_node(concept.id, name=concept.name, depth=concept.depth, synset=concept.synset or "")
            if concept.parent is not None:
                graph.add_edge(concept.parent, concept.id)
        return graph
