"""A user's label table: the CSV that `taxonomy suggest` reads and a dataset spec (`build --add`) names.

Columns: ``id`` and ``name`` are required; ``synonyms`` (``;``-separated), ``description``, ``synset`` (a WordNet
3.0 name such as ``dog.n.01``), ``color`` (``r;g;b``) and ``evaluated`` (0/1) are optional; any other column is
kept as :attr:`Label.extra`. The table is read strictly: every problem (bytes that are not UTF-8, a row with the
wrong number of fields, a bad or duplicate id, an empty or duplicate name, a bad colour) is collected as one line
naming the file and line, and all of them are raised together as a :class:`ProblemList`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from hierseg.core.csvtext import csv_rows
from hierseg.core.errors import HiersegError, ProblemList
from hierseg.core.io import read_bytes
from hierseg.taxonomy.specs import Label

REQUIRED = ("id", "name")
KNOWN = ("id", "name", "synonyms", "description", "synset", "color", "evaluated")
MAX_ID = 65534  # label maps are at most 16-bit; 65535 stays free for an ignore value


@dataclass(frozen=True)
class LabelTable:
    path: Path
    labels: tuple[Label, ...]
    lines: dict[int, int] = field(default_factory=dict)  # label id -> line of the file
    evaluated_given: frozenset[int] = frozenset()  # ids whose row gives 0 or 1 in the evaluated column

    def where(self, label_id: int) -> str:
        return f"{self.path}:{self.lines[label_id]}" if label_id in self.lines else str(self.path)


def normalize(name: str) -> str:
    """Lower case, separators (``-_/,``) as single spaces: ``Potted-Plant`` -> ``potted plant``; letters and digits
    of every script are kept (``草地``, ``café``)."""
    return " ".join(re.sub(r"[\W_]+", " ", name.lower()).split())


def _decode(path: Path, data: bytes, problems: list[str]) -> str | None:
    """UTF-8 text (a BOM is dropped); each line with bytes that are not UTF-8 is one problem."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{path}:{lineno}: not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); "
                            "save the table as UTF-8")
    return None


def _color(text: str) -> tuple[int, int, int] | None:
    parts = text.split(";")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"color {text!r} is not r;g;b with values 0..255")
    return int(parts[0]), int(parts[1]), int(parts[2])


def read_label_table(path: str | Path) -> LabelTable:
    """Read and check a label table; raises :class:`ProblemList` with every problem found."""
    path = Path(path)
    data = read_bytes(path, "label table")  # FIFO-safe and bounded
    problems: list[str] = []
    text = _decode(path, data, problems)
    if text is None:
        raise ProblemList(problems)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = csv_rows(reader, str(path))
    header = next(rows, None)
    if not header:
        raise HiersegError(f"{path}: empty label table; expected a header row with {', '.join(REQUIRED)}")
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise HiersegError(f"{path}:1: missing column(s) {', '.join(missing)} (the header is {','.join(header)})")
    labels: list[Label] = []
    ids: dict[int, int] = {}
    names: dict[str, int] = {}
    given: set[int] = set()
    for row in rows:
        lineno = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{lineno}"
        if len(row) != len(header):
            problems.append(f"{where}: {len(row)} fields, the header has {len(header)}")
            continue
        cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
        try:
            label_id = int(cells["id"])
        except ValueError:
            problems.append(f"{where}: id {cells['id']!r} is not an integer")
            continue
        if not 0 <= label_id <= MAX_ID:
            problems.append(f"{where}: id {label_id} is outside 0..{MAX_ID}")
            continue
        name = cells["name"]
        if not normalize(name):
            problems.append(f"{where}: empty name" + (f" (id {label_id})" if name == "" else f" {name!r}"))
            continue
        if label_id in ids:
            problems.append(f"{where}: duplicate id {label_id} (first on line {ids[label_id]})")
            continue
        key = normalize(name)
        if key in names:
            problems.append(f"{where}: duplicate name {name!r} (first on line {names[key]})")
            continue
        ids[label_id], names[key] = lineno, lineno
        try:
            color = _color(cells["color"]) if cells.get("color") else None
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        evaluated = cells.get("evaluated", "")
        if evaluated not in ("", "0", "1"):
            problems.append(f"{where}: evaluated must be 0 or 1, got {evaluated!r}")
            continue
        synonyms = tuple(s.strip() for s in cells.get("synonyms", "").split(";") if s.strip())
        extra = {k: v for k, v in cells.items() if k not in ("id", "name", "synonyms", "color", "evaluated")}
        if evaluated:
            given.add(label_id)
        labels.append(Label(label_id, name, synonyms, color, evaluated != "0", extra))
    if problems:
        raise ProblemList(problems)
    if not labels:
        raise HiersegError(f"{path}: no labels below the header")
    return LabelTable(path, tuple(labels), {label.id: ids[label.id] for label in labels}, frozenset(given))
