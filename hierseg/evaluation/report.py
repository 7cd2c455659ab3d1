"""The report of one evaluation: scores of one split, and their JSON and CSV forms."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hierseg.evaluation.metrics import Metrics


def _none_for_nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _fmt(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


@dataclass(frozen=True)
class EvalReport:
    """Scores of one split. Every ratio is a fraction in 0..1 (NaN: nothing to score)."""

    dataset: str
    split: str
    images: int
    seconds: float
    metrics: Metrics
    settings: dict[str, Any] = field(default_factory=dict)
    # Scored prediction files only (hierseg.engine.score): the label space, evaluated pixels, and how many of
    # them the predictions hit as equal, finer, coarser, outside or not comparable.
    comparison: dict[str, Any] | None = None

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
        m = self.metrics
        out: dict[str, Any] = {
            "dataset": self.dataset, "split": self.split, "images": self.images, "seconds": round(self.seconds, 3),
            "settings": self.settings, "miou": _none_for_nan(m.miou), "pixel_acc": _none_for_nan(m.pixel_acc),
            "mean_acc": _none_for_nan(m.mean_acc), "pixels": m.pixels, "classes_evaluated": len(m.classes),
            "groups": [{k: _none_for_nan(v) for k, v in asdict(g).items()} for g in m.groups],
        }
        if m.categories:
            out["category_miou"] = _none_for_nan(m.category_miou)
            out["categories"] = [{k: _none_for_nan(v) for k, v in asdict(c).items()} for c in m.categories]
        if self.comparison is not None:
            out["comparison"] = dict(self.comparison)
        if per_class:
            out["classes"] = [{k: _none_for_nan(v) for k, v in asdict(c).items()} for c in m.classes]
        return out

    def to_json(self, per_class: bool = True) -> str:
        return json.dumps(self.to_dict(per_class), indent=1) + "\n"

    def to_csv(self, per_class: bool = True) -> str:
        """One row per score: ``overall`` (iou = mIoU, acc = pixel accuracy, mean_acc = class-average accuracy),
        ``group`` (iou = the group's mIoU), ``category`` (Cityscapes' categories: key ``mean`` holds their mean) and,
        with ``per_class``, ``class`` (iou, acc = the class's accuracy)."""
        m = self.metrics
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["kind", "key", "name", "concept", "depth", "leaf", "classes", "present", "iou", "acc",
                         "mean_acc", "pixels"])
        present = sum(1 for c in m.classes if not math.isnan(c.iou))
        writer.writerow(["overall", self.dataset, self.split, "", "", "", len(m.classes), present, _fmt(m.miou),
                         _fmt(m.pixel_acc), _fmt(m.mean_acc), m.pixels])
        for g in m.groups:
            writer.writerow(["group", g.group, "", "", "" if g.depth is None else g.depth, int(g.depth is not None),
                             g.classes, g.present, _fmt(g.miou), "", "", ""])
        if m.categories:
            present = sum(1 for c in m.categories if not math.isnan(c.iou))
            writer.writerow(["category", "mean", "", "", "", "", len(m.categories), present, _fmt(m.category_miou),
                             "", "", ""])
            for c in m.categories:
                writer.writerow(["category", c.category, "", "", "", "", c.classes, "", _fmt(c.iou), "", "", ""])
        for kind, pixels in (self.comparison or {}).items():
            if kind != "space":  # prediction files: pixels of each kind of comparison (see hierseg.engine.score)
                writer.writerow(["comparison", kind, self.comparison["space"], "", "", "", "", "", "", "", "", pixels])
        if per_class:
            for c in m.classes:
                writer.writerow(["class", c.id, c.name, c.concept or "", "" if c.depth is None else c.depth,
                                 "" if c.leaf is None else int(c.leaf), "", "", _fmt(c.iou), _fmt(c.acc), "",
                                 c.pixels])
        return buffer.getvalue()
