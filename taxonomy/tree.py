"""The built concept tree: immutable, loaded from the JSON artifact without WordNet or torch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hierseg.core.errors import HiersegError
from hierseg.core.io import read_text
from hierseg.core.jsontext import parse_json

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
    if not path.is_file():
        raise HiersegError(f"{path}: no shipped label map for {dataset!r}")
    return read_text(path, "label map")


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
    data = parse_json(read_text(path, "taxonomy"), str(path), "taxonomy")
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
    if not isinstance(entry["id"], str) or not entry["id"] or not (entry["parent"] is None
                                                                   or isinstance(entry["parent"], str)):
        raise HiersegError(f"{where}: id and parent must be strings (parent null for the root)")
    for key in ("name", "synset", "definition", "source"):
        if not (isinstance(entry.get(key), str) or (key != "name" and entry.get(key) is None)):
            raise HiersegError(f"{where}: {key} must be a string{'' if key == 'name' else ' or null'}, not "
                               f"{entry[key]!r}")
    if isinstance(entry["depth"], bool) or not isinstance(entry["depth"], int):
        raise HiersegError(f"{where}: depth must be an integer, not {entry['depth']!r}")
    labels = entry.get("labels", {})
    if not isinstance(labels, dict):
        raise HiersegError(f"{where}: labels must map dataset names to lists of label ids, not {labels!r}")
    for dataset, ids in labels.items():
        if not isinstance(ids, list) or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
            raise HiersegError(f"{where}: labels.{dataset} must be a list of non-negative integer ids, not {ids!r}")
    return Concept(id=entry["id"], name=entry["name"], parent=entry["parent"], depth=entry["depth"],
                   synset=entry.get("synset"), definition=entry.get("definition"), source=entry.get("source", ""),
                   labels={k: tuple(v) for k, v in labels.items()})


class Taxonomy:
    """Concepts by stable string id, with parent, children, depth and ancestors.

    Build one with :meth:`load`. The structure is checked here, in the one loader every command uses (one line for
    the first problem): each record's types, unique ids, known parents, one root (the declared ``root``), every
    concept below it (no parent cycle: walking up always ends) and each depth its distance from the root; so no
    command hangs or prints half a tree. :func:`hierseg.taxonomy.authoring.validate.validate_artifact` checks the rest
    (coverage, sizes, synsets) and lists every problem.
    """

    def __init__(self, artifact: dict[str, Any]) -> None:
        if not isinstance(artifact, dict):
            raise HiersegError("not a hierseg taxonomy (not a JSON object)")
        self.artifact = artifact
        if not isinstance(artifact.get("root"), str) or not isinstance(artifact.get("concepts"), list):
            raise HiersegError("not a hierseg taxonomy (needs a 'root' id, a string, and a 'concepts' list)")
        datasets = artifact.get("datasets", {})
        if not isinstance(datasets, dict) or not all(isinstance(k, str) and isinstance(v, dict)
                                                     for k, v in datasets.items()):
            raise HiersegError("'datasets' must map each dataset name to its facts (ignore, void, ...)")
        self.root: str = artifact["root"]
        self._concepts: dict[str, Concept] = {}
        self._children: dict[str, list[str]] = {}
        for index, entry in enumerate(artifact["concepts"]):
            concept = _concept(entry, index)
            if concept.id in self._concepts:
                raise HiersegError(f"concept {concept.id}: given twice (concept #{index} and an earlier one)")
            self._concepts[concept.id] = concept
            self._children.setdefault(concept.id, [])
            if concept.parent is not None:
                self._children.setdefault(concept.parent, []).append(concept.id)
        self._check_structure()

    def _check_structure(self) -> None:
        for concept in self._concepts.values():
            if concept.parent is not None and concept.parent not in self._concepts:
                raise HiersegError(f"concept {concept.id}: unknown parent {concept.parent!r}")
        roots = [c.id for c in self._concepts.values() if c.parent is None]
        if roots != [self.root]:
            found = ", ".join(roots[:5]) or "none"
            raise HiersegError(f"tree: the root is declared {self.root!r}, but the concepts without a parent are: "
                               f"{found}; a tree has exactly one root")
        depth = {self.root: 0}
        stack = [self.root]
        while stack:
            node = stack.pop()
            for child in self._children[node]:
                depth[child] = depth[node] + 1
                stack.append(child)
        if len(depth) < len(self._concepts):
            start = next(c for c in self._concepts if c not in depth)
            chain, node = [start], self._concepts[start].parent
            while node not in chain:  # every concept has a known parent and none reaches the root: a cycle
                chain.append(node)
                node = self._concepts[node].parent
            cycle = chain[chain.index(node):] + [node]
            raise HiersegError(f"concept {node}: its parents form a cycle ({' -> '.join(cycle)}), so it does not "
                               f"lie below the root {self.root}")
        for concept in self._concepts.values():
            if concept.depth != depth[concept.id]:
                raise HiersegError(f"concept {concept.id}: depth {concept.depth}, but it is {depth[concept.id]} "
                                   "below the root")

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


def require_taxonomy(value: object) -> Taxonomy | None:
    """``value`` if it is a :class:`Taxonomy` or None; a path (or anything else) is refused: a tree file is read
    where it enters a run (config, checkpoint, CLI option), never deep inside a model."""
    if value is not None and not isinstance(value, Taxonomy):
        raise HiersegError(f"taxonomy must be a Taxonomy, not a {type(value).__name__} (read a tree file with "
                           "Taxonomy.load(path))")
    return value
