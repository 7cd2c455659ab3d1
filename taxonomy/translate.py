"""Label translation between any two label spaces (datasets or the tree), with an honest account of what is lost.

A source value covers a set of concepts, its *extent* (its concept's subtree minus the source's own labels nested
below it). It maps to a target value when every concept of the extent falls under that one target value:
``equal`` when the two concepts are the same, ``coarser`` when the target's concept is an ancestor (coarsening is
exact: Mapillary's lane marking is Cityscapes' road). When the extent spans several target values, or target
values and concepts the target does not label, the source value is ``finer-ambiguous`` (Cityscapes' road may be
any of Mapillary's nine road concepts) and maps to the target's ignore value, as do ``none`` values (void,
ignore, or concepts the target does not cover at all).

A source label whose definition the merge spec lists as overlapping target labels (``overlaps``: Cityscapes'
terrain "may also include a possibly adjacent curb", which Mapillary labels apart) is ``overlap``: its pixels are
only partly comparable, so it maps to the target's ignore value too, and the entry names the overlapping labels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.labelspace import LabelSpace, label_space
from hierseg.taxonomy.neurons import check_values
from hierseg.taxonomy.overlaps import overlapping
from hierseg.taxonomy.tree import Taxonomy

if TYPE_CHECKING:
    import pandas as pd

RELATIONS = ("equal", "coarser", "finer-ambiguous", "overlap", "none")
Unknown = Literal["error", "ignore"]


@dataclass(frozen=True)
class Entry:
    source_id: int
    source_name: str
    source_concept: str | None
    target_id: int
    target_name: str
    target_concept: str | None
    relation: str
    overlaps: tuple[int, ...] = ()  # for ``overlap``: the target labels whose definitions overlap this one


class Translation:
    """Source space, target space, one entry (with its relation) per source value, and a lookup table."""

    def __init__(self, source: LabelSpace, target: LabelSpace, entries: tuple[Entry, ...]) -> None:
        self.source, self.target, self.entries = source, target, entries
        codomain = {*target.ids, target.ignore}
        dtype = target.dtype
        top = np.iinfo(dtype).max
        if max(codomain) < top:
            self.sentinel, self._sentinel_is_max = top, True
        else:
            free = sorted(set(range(top + 1)) - codomain)
            if not free:
                dtype, top = np.dtype(np.uint16), np.iinfo(np.uint16).max
            self.sentinel, self._sentinel_is_max = (free[0], False) if free else (top, True)
        # Covers every value of the label's integer type, so uint8 maps never index past the table.
        self.lut = np.full(max(source.size, 256), self.sentinel, dtype=dtype)
        for entry in entries:
            self.lut[entry.source_id] = entry.target_id
        self.lut.setflags(write=False)

    def __repr__(self) -> str:
        return f"Translation({self.source.name} -> {self.target.name}, {dict(self.counts)})"

    @cached_property
    def counts(self) -> Counter[str]:
        return Counter(e.relation for e in self.entries)

    def entry(self, source_id: int) -> Entry:
        for entry in self.entries:
            if entry.source_id == source_id:
                return entry
        raise HiersegError(f"{self.source.name}: no label with id {source_id}")

    def rows(self) -> list[dict[str, Any]]:
        """One row per source value, as ``labels export`` writes them; ``overlaps`` names the target labels an
        ``overlap`` row shares pixels with."""
        return [{"source_id": e.source_id, "source_name": e.source_name, "source_concept": e.source_concept or "",
                 "target_id": e.target_id, "target_name": e.target_name, "target_concept": e.target_concept or "",
                 "relation": e.relation,
                 "overlaps": "; ".join(f"{i} {self.target.name_of(i)}" for i in e.overlaps)} for e in self.entries]

    def to_frame(self) -> pd.DataFrame:
        """The table as a pandas DataFrame indexed by ``source_id`` (the columns of :meth:`rows`), for a notebook:
        ``table.to_frame().query("relation == 'finer-ambiguous'")``."""
        import pandas as pd  # only this method needs it: loading the tree stays light

        return pd.DataFrame(self.rows()).set_index("source_id")

    def apply(self, label: np.ndarray, unknown: Unknown = "error", where: str | None = None) -> tuple[np.ndarray, int]:
        """Translate a label map in one gather; returns the map and the number of undefined pixels.

        A value the source does not define raises :class:`HiersegError` naming ``where`` and the value, or with
        ``unknown="ignore"`` becomes the target's ignore value and is counted.
        """
        where = where or self.source.name
        if label.dtype != np.uint8:
            check_values(label, len(self.lut), where)
            out = np.take(self.lut, label)
        else:
            out = self._take_uint8(label)
        if not out.size:
            return out, 0
        hit = out.max() == self.sentinel if self._sentinel_is_max else bool((out == self.sentinel).any())
        if not hit:
            return out, 0
        undefined = out == self.sentinel
        if unknown == "error":
            value = int(label[undefined].flat[0])
            raise HiersegError(f"{where}: value {value} is not a {self.source.name} label id")
        out[undefined] = self.target.ignore
        return out, int(undefined.sum())


    @cached_property
    def _pair_lut(self) -> np.ndarray:
        """Two pixels per lookup: entry ``(h << 8) | l`` holds ``(lut[h] << bits) | lut[l]``.

        Read through a 16-bit view of the label, this halves the number of gathers; the formula is the same on
        either byte order, so the view needs no endianness care.
        """
        wide = np.uint16 if self.lut.dtype == np.uint8 else np.uint32
        bits = 8 * self.lut.dtype.itemsize
        lut = self.lut[:256].astype(wide)
        return ((lut[:, None] << wide(bits)) | lut[None, :]).reshape(-1)

    def _take_uint8(self, label: np.ndarray) -> np.ndarray:
        if label.size % 2 or not label.flags.c_contiguous:
            return np.take(self.lut, label)
        pairs = label.reshape(-1).view(np.uint16)
        return np.take(self._pair_lut, pairs).view(self.lut.dtype).reshape(label.shape)


def owners(taxonomy: Taxonomy, space: LabelSpace) -> dict[str, int | None]:
    """For every concept, the value of ``space`` whose extent holds it (the deepest labelled ancestor-or-self)."""
    by_concept = {c: v for v, c in space.concepts.items() if c is not None}
    owner: dict[str, int | None] = {}
    for concept in taxonomy:  # artifact order: parents before children
        inherited = owner[concept.parent] if concept.parent is not None else None
        owner[concept.id] = by_concept.get(concept.id, inherited)
    return owner


def _subtree(taxonomy: Taxonomy, concept: str) -> list[str]:
    out, stack = [], [concept]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(taxonomy.children(node))
    return out


def translation(taxonomy: Taxonomy, source: str | LabelSpace, target: str | LabelSpace) -> Translation:
    """The translation from ``source`` to ``target``: dataset names or ``"tree"``."""
    src = source if isinstance(source, LabelSpace) else label_space(taxonomy, source)
    dst = target if isinstance(target, LabelSpace) else label_space(taxonomy, target)
    src_owner, dst_owner = owners(taxonomy, src), owners(taxonomy, dst)
    overlaps = overlapping(taxonomy, src.name, dst.name)
    entries = [Entry(src.ignore, src.ignore_name, None, dst.ignore, dst.ignore_name, None, "none")]
    for value, concept in src.concepts.items():
        target_id, relation = dst.ignore, "none"
        if concept is not None:
            extent = [x for x in _subtree(taxonomy, concept) if src.hierarchical or src_owner[x] == value]
            if dst.hierarchical:
                # A tree value denotes its whole subtree, so the source's own concept covers the extent exactly.
                targets = {dst_owner[concept]}
            else:
                targets = {dst_owner[x] for x in extent}
            if len(targets) > 1:
                relation = "finer-ambiguous"
            elif (only := targets.pop()) is not None:
                target_id = only
                relation = "equal" if dst.concepts[only] == concept else "coarser"
        if concept is not None and overlaps.get(value):
            target_id, relation = dst.ignore, "overlap"
        target_concept = dst.concepts.get(target_id) if relation in ("equal", "coarser") else None
        entries.append(Entry(value, src.names[value], concept, target_id, dst.name_of(target_id), target_concept,
                             relation, overlaps.get(value, ()) if relation == "overlap" else ()))
    entries.sort(key=lambda e: e.source_id)
    return Translation(src, dst, tuple(entries))
