"""Pre-flight checks of a training run: the model against the zoo, every path and dataset split, the run folder.

Everything here runs before the first step and writes nothing (:func:`claim_run_dir` then locks the folder): a bad
config never starts a run, and each problem is one line naming the config field.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.core.io import FolderLock, remove_temporaries
from hierseg.engine import distributed
from hierseg.engine.checkpoint import read_checkpoint
from hierseg.engine.config import DatasetConfig, TrainConfig, first_difference
from hierseg.taxonomy.specs import DATASETS
from hierseg.taxonomy.tree import Taxonomy

LAST = "last.pt"
# What a run writes besides last.pt and config.yaml: a folder holding any of them is another run's.
RUN_OUTPUTS = ("model.pt", "best.pt", "metrics.jsonl", "metrics.csv", "finetune", "tensorboard")
# Sections whose change would make a resumed run a different run; output intervals, workers, precision may change.
RESUME_KEYS = ("model", "data.datasets", "schedule", "optim", "finetune", "init", "run.seed")

ModelFn = Callable[..., nn.Module]

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything checked and listed before the first step: a bad config never starts a run."""

    config: TrainConfig
    source: str
    datasets: dict[str, Any]  # name -> SegmentationDataset
    model_name: str
    model_kwargs: dict[str, Any]  # JSON-able, as stored in checkpoints
    taxonomy: Taxonomy | None  # passed as the model's ``taxonomy`` argument and stored in checkpoints
    model_fn: ModelFn
    resume: dict[str, Any] | None  # the resume checkpoint
    resume_stat: tuple[int, int] | None = None  # its size and mtime as read, to notice a writer in between
    trust_checkpoints: bool = False  # read checkpoints without a digest (--trust-checkpoint)


def prepare(config: TrainConfig, source: str = "config", resume: bool = False,
            model_fn: ModelFn | None = None, overwrite: bool = False, trust_checkpoints: bool = False) -> Prepared:
    """Check the model, every path and every dataset split, and the run folder; nothing is written.
    ``trust_checkpoints``: the resume checkpoint and ``init.backbone_from`` may lack a digest (never runs code).

    :func:`claim_run_dir` then locks the folder for the run (and checks it again under the lock).
    """

    def fail(field: str, message: str) -> HiersegError:
        return HiersegError(f"{source}: {field}: {message}")

    kwargs = dict(config.model.kwargs)  # JSON-able, as checkpoints record them: the tree travels typed, beside them
    if model_fn is None:
        model_fn, takes_taxonomy = _zoo_model(config, kwargs, fail)
    else:
        takes_taxonomy = "taxonomy" in kwargs
    taxonomy = None
    if takes_taxonomy:
        try:
            kwargs.pop("taxonomy", None)
            taxonomy = config.model.taxonomy()  # read once: the config's own check may have read it already
        except HiersegError as exc:
            raise fail("model.kwargs.taxonomy", str(exc)) from None
    _check_weights(config, kwargs, fail)
    if resume and overwrite:
        raise HiersegError("--resume continues the run in output.dir and --overwrite replaces it; give one of them")
    datasets = {}
    for i, d in enumerate(config.data.datasets):
        datasets[d.name] = _open_dataset(d, config.run.seed, config.data.on_error,
                                         lambda field, msg, i=i: fail(f"data.datasets.{i}{field}", msg), taxonomy)
    if config.eval.every:
        _check_validation(config, taxonomy, fail)

    if config.output.tensorboard:
        from hierseg.engine.tensorboard import check_available

        check_available()
    resume_stat = _stat(config.output.dir / LAST) if resume else None
    payload = _check_run_dir(config, source, resume, overwrite, trust=trust_checkpoints)
    return Prepared(config, source, datasets, config.model.name, kwargs, taxonomy, model_fn, payload, resume_stat,
                    trust_checkpoints)


Fail = Callable[[str, str], HiersegError]


def _zoo_model(config: TrainConfig, kwargs: dict[str, Any], fail: Fail) -> tuple[ModelFn, bool]:
    """The registry's model of ``config`` with its keywords checked (``kwargs`` gains the run's datasets where the
    model takes them); returns its builder and whether it takes a taxonomy."""
    from hierseg.models.registry import (
        ArgumentError,
        accepted_arguments,
        check_model_arguments,
        create_model,
        entrypoint,
    )

    name = config.model.name
    try:
        entrypoint(name)
    except HiersegError as exc:
        raise fail("model.name", str(exc)) from None
    accepted = accepted_arguments(name)
    try:
        check_model_arguments(name, kwargs)  # unknown names, types and ranges
    except ArgumentError as exc:
        raise fail(f"model.kwargs.{exc.key}", exc.reason) from None
    if "datasets" in accepted and "datasets" not in kwargs and "num_classes" not in kwargs:
        kwargs["datasets"] = list(config.data.names)  # the label spaces the run trains on
    if config.model.backbone_weights is not None and "backbone_weights" not in accepted:
        raise fail("model.backbone_weights", f"{name} takes no backbone_weights")
    return partial(create_model, name), "taxonomy" in accepted


def _check_weights(config: TrainConfig, kwargs: dict[str, Any], fail: Fail) -> None:
    """The backbone weights (a local file or a hub id; downloads happen at build) and ``init.backbone_from``."""
    if config.model.backbone_weights is not None:
        from hierseg.models.registry import check_backbone_weights

        try:
            check_backbone_weights(config.model.backbone_weights)
        except HiersegError:
            raise fail("model.backbone_weights", f"{config.model.backbone_weights}: no such file (or name hub weights: "
                                                 "timm/<name>, hf-hub:<org>/<repo>)") from None
        kwargs["backbone_weights"] = str(config.model.backbone_weights)
    if config.init.backbone_from is not None and not config.init.backbone_from.is_file():
        raise fail("init.backbone_from", f"{config.init.backbone_from}: no such checkpoint")


def _check_validation(config: TrainConfig, taxonomy: Taxonomy | None, fail: Fail) -> None:
    """``eval.every``: every dataset has the split to validate on, with images; ``eval.best`` is a metric that
    validation reports."""
    from hierseg.data.readers import open_split
    from hierseg.engine.evaluate import resolve_split
    from hierseg.engine.validation import check_best

    split = config.eval.split
    for i, d in enumerate(config.data.datasets):
        try:
            found = resolve_split(d.name, split, taxonomy)
            images = len(open_split(d.name, d.root, found, taxonomy=taxonomy))
        except HiersegError as exc:
            raise fail("eval.every", f"validation needs a {split!r} split of every dataset; data.datasets.{i} "
                                     f"({d.name}) has none at {d.root} ({exc}); add it, set eval.split, or set "
                                     "eval.every: 0") from None
        if images == 0:
            raise fail("eval.every", f"data.datasets.{i} ({d.name}): its {found!r} split at {d.root} has no images "
                                     "to validate on")
    if config.eval.best is not None:
        try:
            check_best(config.eval.best, config.data.names, split, taxonomy)
        except HiersegError as exc:
            raise fail("eval.best", str(exc)) from None


def claim_run_dir(prepared: Prepared, overwrite: bool = False) -> FolderLock | None:
    """Lock ``output.dir`` for the run (in the process that writes it; other DDP ranks never write) and check it
    again under the lock: another run may have written it since :func:`prepare` looked. With the lock held,
    temporaries of killed checkpoint saves are removed and, with ``overwrite``, the previous run's outputs."""
    if not distributed.main_process_by_env():
        return None
    config, source = prepared.config, prepared.source
    try:
        lock = FolderLock(config.output.dir, "training run").acquire()
    except HiersegError as exc:
        raise HiersegError(f"{source}: output.dir: {exc}") from None
    try:
        if prepared.resume is None:
            _check_run_dir(config, source, False, overwrite, locked=True)
        elif _stat(config.output.dir / LAST) != prepared.resume_stat:
            raise HiersegError(f"{source}: output.dir: {config.output.dir / LAST} changed while this run was "
                               "starting; another process wrote the folder")
        run_dir = config.output.dir
        for stale in remove_temporaries(run_dir) + remove_temporaries(run_dir / "finetune"):
            logger.info("removed %s, left by a killed checkpoint save", stale)
        if overwrite:
            _clear_outputs(run_dir)
    except BaseException:
        lock.release(remove_created=True)
        raise
    return lock


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _open_dataset(d: DatasetConfig, seed: int, on_error: str, fail: Fail,
                  taxonomy: Taxonomy | None = None) -> Any:
    """One split of a dataset, built in or added to ``taxonomy`` (read the way its spec says its files lie)."""
    from hierseg.data.readers import open_split
    from hierseg.data.transforms import TrainTransform
    from hierseg.taxonomy.specs import dataset_spec

    if not d.root.is_dir():
        tree = "" if d.name in DATASETS else " --taxonomy TREE.json"
        raise fail(".root", f"{d.root}: no such folder (a synthetic copy: hierseg data synth --dataset {d.name}{tree} "
                            f"--out {d.root})")
    try:
        spec = dataset_spec(d.name, taxonomy.artifact if taxonomy is not None else None)
        transform = TrainTransform(crop=d.crop, ignore=spec.ignore, scale=d.scale, flip=d.flip)
        return open_split(d.name, d.root, d.split, taxonomy=taxonomy, transform=transform, seed=seed,
                          on_error=on_error)
    except HiersegError as exc:
        raise fail("", str(exc)) from None


def _check_run_dir(config: TrainConfig, source: str, resume: bool, overwrite: bool = False,
                   locked: bool = False, trust: bool = False) -> dict[str, Any] | None:
    """Refuse a folder another run is writing (its lock), another run's outputs, or a resume that does not fit;
    ``locked``: this process holds the folder's lock already."""
    run_dir = config.output.dir
    last = run_dir / LAST
    writer = distributed.main_process_by_env()  # other DDP ranks would find their own run's rank 0 holding it
    holder = FolderLock.holder(run_dir) if writer and not locked else None
    if holder is not None:
        raise HiersegError(f"{source}: output.dir: {FolderLock(run_dir, 'training run').busy_error(holder)}")
    if not resume:
        # Other ranks never write the folder, and rank 0 may be writing it already when a process group existed
        # before the run (no rendezvous in between): rank 0 alone judges it.
        if overwrite or not writer:
            return None
        if last.exists():
            raise HiersegError(f"{source}: output.dir: {run_dir} already holds a run ({last}); continue it with "
                               "--resume, replace it with --overwrite, or choose another output.dir")
        found = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
        if found and _failed_start(run_dir, found):
            return None  # a run that stopped before its first step: nothing of it to keep, its files are replaced
        if found:
            raise HiersegError(f"{source}: output.dir: {run_dir} holds another run's outputs ({', '.join(found)}) "
                               f"but no {LAST} to resume; replace them with --overwrite or choose another output.dir")
        return None
    if not last.is_file():
        raise HiersegError(f"{source}: output.dir: {last}: no checkpoint to resume")
    payload = read_checkpoint(last, trust=trust)
    training = payload.get("training") or {}
    if "config" not in training:
        raise HiersegError(f"{last}: holds no training state to resume")
    for key in RESUME_KEYS:
        old, new = _pick(training["config"], key), _pick(config.model_dump(mode="json"), key)
        where = first_difference(old, new, key)
        if where is not None:
            raise HiersegError(f"{source}: {where}: differs from the run being resumed "
                               f"({_pick(training['config'], where)!r} there); use the same config to resume, "
                               "or start a new output.dir")
    world = distributed.env_world_size()
    if training.get("world_size", 1) != world:
        raise HiersegError(f"{last}: the run used {training.get('world_size', 1)} processes, this one {world}; "
                           "resume with the same number (the sampler shards batches by rank)")
    return payload


def _failed_start(run_dir: Path, found: list[str]) -> bool:
    """The outputs are those of a run that failed before its first step (a checkpoint that did not load, a device
    that is not there): no checkpoint, and metrics logs without a record."""
    from hierseg.engine.logs import METRICS_CSV, METRICS_JSONL

    if not set(found) <= {METRICS_JSONL, METRICS_CSV}:
        return False
    for name in found:
        path = run_dir / name
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 4096:
            return False
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        if len(lines) > (1 if name == METRICS_CSV else 0):  # the CSV's header only
            return False
    return True


def _clear_outputs(run_dir: Path) -> None:
    """--overwrite: the previous run's files go before this run writes, so the folder never mixes two runs. A link
    among them is removed itself; nothing is deleted through it."""
    for name in (LAST, "model.pt", "best.pt", "metrics.jsonl", "metrics.csv"):
        (run_dir / name).unlink(missing_ok=True)
    for name in ("finetune", "tensorboard"):
        if (run_dir / name).is_symlink():
            (run_dir / name).unlink()
    for path in sorted((run_dir / "finetune").glob("*.pt")) if (run_dir / "finetune").is_dir() else ():
        path.unlink()
    if (run_dir / "tensorboard").is_dir():
        shutil.rmtree(run_dir / "tensorboard")


def _pick(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(tree, dict):
            tree = tree.get(part)
        elif isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        else:
            return None
    return tree
