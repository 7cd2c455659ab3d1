"""Label spaces: the pixel values of one dataset, or of the tree itself, and the concept each value denotes.

A dataset label denotes its concept *minus* the concepts of the same dataset's labels nested below it (ADE20K's
``earth`` excludes its ``sand``). A tree label (``tree``: the concept's index in the artifact) denotes the whole
subtree of its concept: a prediction that stops at ``animal_things`` says "some animal".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.specs import DATASETS, dataset_spec
from hierseg.taxonomy.tree import Taxonomy

TREE = "tree"
TREE_IGNORE = 65535  # 359 concepts need 16-bit label maps; the largest uint16 value is the ignore value


@dataclass(frozen=True)
class LabelSpace:
    name: str
    ignore: int
    ignore_name: str
    names: dict[int, str]  # every value a label map may hold except the ignore value
    concepts: dict[int, str | None]  # value -> concept; None for void values (Cityscapes' "static", ...)
    hierarchical: bool = False  # True for the tree: a value denotes its concept's whole subtree

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(self.names)

    @property
    def size(self) -> int:
        """Length of a lookup table indexed by this space's values."""
        return max(max(self.names), self.ignore) + 1

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.size <= 256 else np.uint16)

    @property
    def defined(self) -> np.ndarray:
        """Boolean table over ``range(size)``: which values a label map of this space may hold."""
        table = np.zeros(self.size, dtype=bool)
        table[list(self.names)] = True
        table[self.ignore] = True
        return table

    def name_of(self, value: int) -> str:
        return self.ignore_name if value == self.ignore else self.names[value]


def label_space(taxonomy: Taxonomy, name: str) -> LabelSpace:
    """The label space of dataset ``name`` (ids and names from its shipped spec) or of the tree (``"tree"``)."""
    if name == TREE:
        ids = [c.id for c in taxonomy]
        return LabelSpace(TREE, TREE_IGNORE, "ignore", dict(enumerate(ids)), dict(enumerate(ids)), hierarchical=True)
    if name not in taxonomy.datasets:
        raise HiersegError(f"unknown dataset {name!r}; choose one of {', '.join(taxonomy.datasets)} or {TREE!r}")
    mapped = taxonomy.dataset_concepts(name)
    by_concept: dict[str, int] = {}
    for label_id, concept in sorted(mapped.items()):
        if concept in by_concept:
            # Two values on one concept would make every translation into this dataset ambiguous.
            raise HiersegError(f"{name}: labels {by_concept[concept]} and {label_id} both map to concept {concept!r}")
        by_concept[concept] = label_id
    if name in DATASETS or "labels" in taxonomy.artifact["datasets"][name]:  # built-in, or added with its table
        spec = dataset_spec(name, taxonomy.artifact)
        names, ignore, ignore_name = {label.id: label.name for label in spec.labels}, spec.ignore, spec.ignore_name
    else:  # a dataset only the artifact knows (a user's own tree): concept ids stand in for label names
        info = taxonomy.artifact["datasets"][name]
        names = {**mapped, **{int(v): f"void:{v}" for v in info.get("void", {})}}
        names = dict(sorted(names.items()))
        ignore, ignore_name = int(info["ignore"]), "ignore"
    return LabelSpace(name, ignore, ignore_name, names, {i: mapped.get(i) for i in names})
