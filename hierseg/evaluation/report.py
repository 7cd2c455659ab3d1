"""The report of one evaluation, and its every form: JSON, CSV, the flat scalars of TensorBoard and ``metrics.jsonl``.

A :class:`Report` holds what was evaluated (dataset, split, images, seconds, settings) and the score objects the
metrics gave (:mod:`hierseg.evaluation.scoring`); each score object describes itself as
:class:`~hierseg.evaluation.sections.Section` objects, and every output here (and the CLI's table) only walks those.
A new metric, or a section another path adds (``extra=`` of :func:`~hierseg.evaluation.scoring.report_of`), appears
in all of them without a change to this module.

- JSON: ``{"dataset", "split", "images", "seconds", "settings", SECTION: {VALUE: ..., "rows": [{COLUMN: ...}]}}``;
  fractions in 0..1, NaN as ``null``.
- CSV: ``section,key,value,COLUMN...``: one line per headline value (``key`` its name, ``value`` its value) and one
  per table row (``key`` its first column, the other columns by name; the header is every section's columns).
  The report's own facts are section ``report``.
- :meth:`Report.scalars`: ``name -> value`` of every section (``mIoU``, ``mIoU_level/3``, ``severity/mean``, ...),
  NaN left out.
- :meth:`Report.to_frame`: a section's table as a pandas DataFrame (per-class results in a notebook).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from hierseg.core.errors import HiersegError
from hierseg.evaluation.sections import COUNT, NUMBER, TEXT, Field, Section

if TYPE_CHECKING:
    import pandas as pd

    from hierseg.evaluation.metrics import Metrics

T = TypeVar("T")
HEADER = (Field("dataset", "dataset", TEXT), Field("split", "split", TEXT), Field("images", "images", COUNT),
          Field("seconds", "seconds", NUMBER))


@dataclass(frozen=True)
class Report:
    """Scores of one split. ``scores``: the score objects, each with ``sections()`` (one object is taken as a
    one-element tuple, so ``Report(dataset, split, images, seconds, metrics)`` still works)."""

    dataset: str
    split: str
    images: int
    seconds: float
    scores: Any
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.scores, tuple):
            object.__setattr__(self, "scores", (self.scores,))

    def get(self, kind: type[T]) -> T | None:
        """The score object of type ``kind`` (``Metrics``, ``LevelScores``, ...), or None."""
        return next((s for s in self.scores if isinstance(s, kind)), None)

    def sections(self, per_class: bool = True) -> tuple[Section, ...]:
        """Every section, in the order of the scores; ``per_class=False`` leaves out the detail sections."""
        return tuple(s for score in self.scores for s in score.sections() if per_class or not s.detail)

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections() if s.key == key), None)

    def scalars(self) -> dict[str, float]:
        """Flat ``name -> value`` of every section (NaN, nothing to score, left out): what TensorBoard and the
        training log record."""
        out: dict[str, float] = {}
        for section in self.sections():
            out.update((k, float(v)) for k, v in section.scalars.items() if not math.isnan(v))
        return out

    # the figures every caller asks for
    @property
    def metrics(self) -> Metrics:
        from hierseg.evaluation.metrics import Metrics

        metrics = self.get(Metrics)
        if metrics is None:
            raise AttributeError("this report has no flat metrics")
        return metrics

    @property
    def miou(self) -> float:
        return self.metrics.miou

    @property
    def pixel_acc(self) -> float:
        return self.metrics.pixel_acc

    @property
    def mean_acc(self) -> float:
        return self.metrics.mean_acc

    def to_dict(self, per_class: bool = True) -> dict[str, Any]:
        """JSON-able; NaN becomes ``None``."""
        out = {f.key: f.json(getattr(self, f.key)) for f in HEADER}
        out["seconds"] = round(out["seconds"], 3)
        out["settings"] = dict(self.settings)
        for section in self.sections(per_class):
            out[section.key] = section.to_dict()
        return out

    def to_frame(self, section: str = "classes") -> pd.DataFrame:
        """A section's table as a pandas DataFrame indexed by its first column: by default every class (``id``
        -> ``name``, ``concept``, ``iou``, ``acc``, ``pixels``, ...), or ``"levels"``, ``"categories"``,
        ``"level_concepts"``, ... (each section with a table). Fractions stay in 0..1 and a class with nothing to
        score keeps NaN: ``report.to_frame().sort_values("iou").head()`` are the worst classes."""
        import pandas as pd  # only this method needs it

        found = self.section(section)
        if found is None or not found.columns:
            tables = [s.key for s in self.sections() if s.columns]
            raise HiersegError(f"this report has no table {section!r}; its tables are {', '.join(tables)}")
        columns = [c.key for c in found.columns]
        return pd.DataFrame([list(row) for row in found.rows], columns=columns).set_index(columns[0])

    def to_json(self, per_class: bool = True) -> str:
        return json.dumps(self.to_dict(per_class), indent=1) + "\n"

    def to_csv(self, per_class: bool = True) -> str:
        sections = self.sections(per_class)
        columns = list(dict.fromkeys(c.key for s in sections for c in s.columns[1:]))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["section", "key", "value", *columns])
        blank = [""] * len(columns)

        def cell(f: Field, value: Any) -> str:
            value = f.json(value)
            return "" if value is None else repr(value) if isinstance(value, float) else str(value)

        for f in HEADER:
            writer.writerow(["report", f.key, cell(f, getattr(self, f.key)), *blank])
        for key, value in self.settings.items():
            writer.writerow(["report", f"settings.{key}", "" if value is None else value, *blank])
        for s in sections:
            for f, value in s.values:
                writer.writerow([s.key, f.key, cell(f, value), *blank])
            for row in s.rows:
                by_key = {c.key: cell(c, v) for c, v in zip(s.columns[1:], row[1:], strict=True)}
                writer.writerow([s.key, cell(s.columns[0], row[0]), "", *(by_key.get(c, "") for c in columns)])
        return buffer.getvalue()


EvalReport = Report  # the name the engine's evaluation has always returned
