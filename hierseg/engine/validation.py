"""Validation during training (``eval.every``), as mmsegmentation's evaluation interval and detectron2's ``EvalHook``
give it: a hook that scores the model on each dataset's val split, puts the figures in the step's record (so they
reach ``metrics.jsonl``, TensorBoard and ``hierseg plot`` with the losses), and keeps ``best.pt`` by a chosen metric.

Metric names are ``DATASET/NAME`` for the names of one dataset's ``report.scalars()`` (``mIoU``, ``pixel_acc``,
``mean_acc``, ``category_mIoU``, ``mIoU_level/2``, ``severity/mean``, ...) and ``mean/NAME`` for the mean over the
datasets validated at that step of a name every one of them has. Higher is better for every one but the mistakes'
severity (``severity/mean``: levels to the common ancestor), for which lower is.

Evaluation runs with the generator states of Python, NumPy and torch saved and put back, so a run with validation
trains exactly as one without it (the loader of the val split would otherwise draw its base seed from torch's).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.engine.checkpoint import restore_rng_state, rng_state
from hierseg.engine.config import EvalConfig
from hierseg.engine.evaluate import evaluate
from hierseg.engine.hooks import TrainingHook
from hierseg.evaluation.scoring import scalar_names
from hierseg.evaluation.severity import LOWER_IS_BETTER
from hierseg.taxonomy.tree import Taxonomy

MEAN = "mean"
MEANED = ("mIoU", "pixel_acc", "mean_acc")  # names every dataset's report has

logger = logging.getLogger(__name__)


def validate(model: nn.Module, dataset: str, root: Path, split: str, config: EvalConfig,
             device: torch.device) -> tuple[dict[str, float], int]:
    """The one call into the engine's evaluation: ``(scalars, images)`` of ``model`` on ``split`` of ``dataset``, read
    in the model's own tree."""
    report = evaluate(model, dataset, root, split, batch_size=config.batch_size, device=device, limit=config.limit)
    return report.scalars(), report.images


def combine(per_dataset: dict[str, dict[str, float]]) -> dict[str, float]:
    """``DATASET/NAME`` for every figure, and ``mean/NAME`` where every dataset has ``NAME``."""
    out = {f"{name}/{key}": value for name, values in per_dataset.items() for key, value in values.items()}
    for key in MEANED:
        values = [v[key] for v in per_dataset.values() if key in v]
        if per_dataset and len(values) == len(per_dataset):
            out[f"{MEAN}/{key}"] = statistics.fmean(values)
    return out


def metric_names(datasets: Sequence[str], split: str, taxonomy: Taxonomy | None = None) -> list[str]:
    """Every metric a validation of ``datasets`` can report (the evaluation package's ``scalar_names``)."""
    return list(combine({name: dict.fromkeys(scalar_names(name, taxonomy), 0.0) for name in datasets}))


def check_best(best: str, datasets: Sequence[str], split: str, taxonomy: Taxonomy | None) -> None:
    """Raise when ``best`` is not a metric :func:`metric_names` lists (the message suggests the usual ones)."""
    names = metric_names(datasets, split, taxonomy)
    if best not in names:
        usual = [n for n in names if n.split("/", 1)[1] in MEANED]
        raise HiersegError(f"{best!r} is not a metric of this run's validation; choose one of "
                           f"{', '.join(usual)}, or a per-level, severity or category figure ({len(names)} names in all)")


class PeriodicEval(TrainingHook):
    """Every ``config.every`` steps of a stage and after its last step: each of the stage's datasets on its
    ``config.split`` (``roots[dataset]``), the figures into the step's record (``storage.put_scalars("eval", ...)``);
    when ``config.best`` improves, the model to the stage's best checkpoint (``best.pt``, ``finetune/NAME.best.pt``),
    written by the main process.

    Register it before the metrics writer, so the figures are written with the step that made them. Its state (the
    best value and step of each stage) goes into the resume checkpoint, so a resumed run keeps the same best.pt.
    """

    def __init__(self, config: EvalConfig, roots: dict[str, Path], device: torch.device, is_main: bool) -> None:
        self.config, self.roots, self.device, self.is_main = config, roots, device, is_main
        self.best: dict[str, dict[str, float | int]] = {}  # stage name -> {"value", "step"}

    def after_step(self) -> None:
        t = self.trainer
        step = t.iter + 1
        if step % self.config.every and step != t.max_iter:
            return
        figures = self.run(t.model, t.stage.datasets)
        t.storage.put_scalars("eval", figures)
        self._keep_best(figures, step)

    def run(self, model: nn.Module, datasets: Sequence[str]) -> dict[str, float]:
        """Every figure of ``datasets``; the generators are left as they were (see the module docstring)."""
        state = rng_state()
        per_dataset, images = {}, {}
        try:
            for name in datasets:
                per_dataset[name], images[name] = validate(model, name, self.roots[name], self.config.split,
                                                           self.config, self.device)
        finally:
            restore_rng_state(state)
        figures = combine(per_dataset)
        if self.is_main:
            t = self.trainer
            logger.info("%s step %d/%d: validation %s", t.stage.name, t.iter + 1, t.max_iter, ", ".join(
                f"{name} mIoU {100 * per_dataset[name].get('mIoU', math.nan):.2f} ({images[name]} images)"
                for name in datasets))
        return figures

    def _keep_best(self, figures: dict[str, float], step: int) -> None:
        metric = self.config.best
        if metric is None or metric not in figures:
            return
        t = self.trainer
        stage = t.stage
        value = figures[metric]
        previous = self.best.get(stage.name)
        lower = metric.split("/", 1)[1] in LOWER_IS_BETTER
        if previous is not None and (value >= previous["value"] if lower else value <= previous["value"]):
            return
        self.best[stage.name] = {"value": value, "step": step}
        if self.is_main:
            t.save_model(stage.best, step, done=False, best={"metric": metric, "value": value})
            logger.info("%s step %d: %s %.4f, the best so far -> %s", stage.name, step, metric, value, stage.best)

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.config.best, "best": self.best} if self.best else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # best values of another metric (the config may change on resume) say nothing about this one
        self.best = dict(state.get("best", {})) if state.get("metric") == self.config.best else {}
