"""Dataset label specifications: one dataset's label ids, names, colours and ignore value.

The tables live in ``taxonomy/specs/`` (see SOURCES.md there for where each fact comes from). A user can load
any other table with the same first columns through :meth:`DatasetSpec.from_csv`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hierseg.core.csvtext import csv_rows
from hierseg.core.errors import HiersegError
from hierseg.core.io import read_text
from hierseg.core.yamltext import read_yaml

SPEC_DIR = Path(__file__).resolve().parent / "specs"
DATASETS: tuple[str, ...] = ("coco_stuff", "ade20k", "cityscapes", "mapillary")
REQUIRED_COLUMNS = ("id", "name", "synonyms", "color", "evaluated")
MAX_ID = 65535  # label maps are 8- or 16-bit PNGs


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    synonyms: tuple[str, ...] = ()
    color: tuple[int, int, int] | None = None
    evaluated: bool = True
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    ignore: int
    ignore_name: str
    labels: tuple[Label, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {label.id: label for label in self.labels})

    def label(self, label_id: int) -> Label:
        try:
            return self._by_id[label_id]  # type: ignore[attr-defined]
        except KeyError:
            raise HiersegError(f"{self.name}: no label with id {label_id}") from None

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(label.id for label in self.labels)

    @property
    def num_ids(self) -> int:
        """Size of a lookup table over this dataset's pixel values (max id or ignore value, plus one)."""
        return max(max(self.ids), self.ignore) + 1

    @classmethod
    def from_csv(cls, path: str | Path, name: str, ignore: int, title: str = "", ignore_name: str = "ignore") -> DatasetSpec:
        path = Path(path)
        with io.StringIO(read_text(path, "label table"), newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise HiersegError(f"{path}: missing column(s) {', '.join(missing)}")
            labels = [_parse_row(path, lineno, row) for lineno, row in enumerate(csv_rows(reader, str(path)), start=2)]
        if not 0 <= ignore <= MAX_ID:
            raise HiersegError(f"{path}: ignore value {ignore} is outside 0..{MAX_ID} (16-bit label maps)")
        seen: dict[int, int] = {}
        for lineno, label in enumerate(labels, start=2):
            if label.id in seen:
                raise HiersegError(f"{path}:{lineno}: duplicate label id {label.id} (first on line {seen[label.id]})")
            if label.id == ignore:
                raise HiersegError(f"{path}:{lineno}: label id {label.id} equals the ignore value")
            seen[label.id] = lineno
        return cls(name=name, title=title or name, ignore=ignore, ignore_name=ignore_name, labels=tuple(labels))


def _parse_row(path: Path, lineno: int, row: dict[str, str]) -> Label:
    short = [c for c in REQUIRED_COLUMNS if row.get(c) is None]
    if short:
        raise HiersegError(f"{path}:{lineno}: too few fields (no {', '.join(short)})")
    try:
        label_id = int(row["id"])
    except (ValueError, TypeError):
        raise HiersegError(f"{path}:{lineno}: id {row['id']!r} is not an integer") from None
    if not 0 <= label_id <= MAX_ID:
        raise HiersegError(f"{path}:{lineno}: id {label_id} is outside 0..{MAX_ID} (label maps are 8- or 16-bit PNGs)")
    color = None
    if row["color"]:
        parts = row["color"].split(";")
        if len(parts) != 3 or not all(p.strip().isdigit() and int(p) < 256 for p in parts):
            raise HiersegError(f"{path}:{lineno}: color {row['color']!r} is not r;g;b with values 0..255")
        color = (int(parts[0]), int(parts[1]), int(parts[2]))
    if row["evaluated"] not in ("0", "1"):
        raise HiersegError(f"{path}:{lineno}: evaluated must be 0 or 1, got {row['evaluated']!r}")
    if not row["name"].strip():
        raise HiersegError(f"{path}:{lineno}: empty name")
    synonyms = tuple(s for s in row["synonyms"].split(";") if s)
    extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS}
    return Label(label_id, row["name"], synonyms, color, row["evaluated"] == "1", extra)


@cache
def load_spec(dataset: str) -> DatasetSpec:
    """The shipped label specification of one of :data:`DATASETS`."""
    registry = read_yaml(SPEC_DIR / "datasets.yaml", "dataset registry")
    if dataset not in registry:
        raise HiersegError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    entry = registry[dataset]
    return DatasetSpec.from_csv(
        SPEC_DIR / entry["labels"], dataset, int(entry["ignore"]), entry["title"], entry["ignore_name"]
    )


def dataset_spec(dataset: str, artifact: dict[str, Any] | None = None) -> DatasetSpec:
    """The label specification of any dataset a tree covers: a built-in one from its shipped table, one added with
    ``hierseg taxonomy build --add`` from the label table the extended ``artifact`` carries."""
    if dataset in DATASETS:
        return load_spec(dataset)
    entries = (artifact or {}).get("datasets", {})
    entry = entries.get(dataset)
    if not isinstance(entry, dict) or not isinstance(entry.get("labels"), list):
        known = [*DATASETS, *(d for d in entries if d not in DATASETS)]
        raise HiersegError(f"unknown dataset {dataset!r}; the tree covers {', '.join(known)}"
                           + ("" if artifact else " (an added dataset needs its extended tree)"))
    labels = tuple(Label(int(row["id"]), row["name"], tuple(row.get("synonyms") or ()),
                         tuple(row["color"]) if row.get("color") else None, bool(row.get("evaluated", True)),
                         {k: str(v) for k, v in row.items() if k in ("description", "synset", "category")})
                   for row in entry["labels"])
    return DatasetSpec(dataset, entry.get("title") or dataset, int(entry["ignore"]), entry.get("ignore_name") or "ignore",
                       labels)
