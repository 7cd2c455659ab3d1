"""The training loop: stages, steps, checkpoints, resume, DDP, signals.

A run is a list of stages. Stage ``main`` trains on every dataset of the config (one dataset: ordinary training;
several: DSSPN 4.3's universal joint training, each batch drawn from one dataset); an optional ``finetune``
section adds one stage per dataset (``finetune-<name>``) that starts from the joint model at ``lr_factor`` times
the learning rates. Each stage writes its own final checkpoint; ``RUN_DIR/last.pt`` is the resume state.

Run folder::

    RUN_DIR/.hierseg.lock         held (flock) by the one process writing the folder; names its PID
    RUN_DIR/config.yaml           the validated config
    RUN_DIR/last.pt               resume state (model, optimiser, schedule, sampler position, RNG of every rank)
    RUN_DIR/model.pt              the main stage's model
    RUN_DIR/finetune/<name>.pt    one fine-tuned model per dataset
    RUN_DIR/metrics.jsonl, .csv   one record per optimiser step

Everything a step does depends only on the seed, the step number and the checkpointed state: the sampler's order
and the augmentations are functions of ``(seed, epoch, index)``, and the loader draws its worker seeds from its own
generator. Resuming therefore gives the same losses as never stopping.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.core.io import FolderLock, atomic_write_text, remove_temporaries
from hierseg.engine import distributed
from hierseg.engine.checkpoint import (
    load_backbone,
    read_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from hierseg.engine.config import DatasetConfig, TrainConfig, first_difference
from hierseg.engine.logs import MetricsLog, Progress
from hierseg.engine.optim import build_optimizer, learning_rates, poly_scheduler
from hierseg.taxonomy.specs import DATASETS
from hierseg.taxonomy.tree import Taxonomy

LAST = "last.pt"
# What a run writes besides last.pt and config.yaml: a folder holding any of them is another run's.
RUN_OUTPUTS = ("model.pt", "metrics.jsonl", "metrics.csv", "finetune", "tensorboard")
# Sections whose change would make a resumed run a different run; output intervals, workers, precision may change.
RESUME_KEYS = ("model", "data.datasets", "schedule", "optim", "finetune", "init", "run.seed")

ModelFn = Callable[..., nn.Module]
StepHook = Callable[[dict[str, Any]], None]


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run after a step; the resume checkpoint is at ``checkpoint``."""

    def __init__(self, signum: int, checkpoint: Path, stage: str, step: int, total: int) -> None:
        self.signum, self.checkpoint, self.stage, self.step, self.total = signum, checkpoint, stage, step, total
        super().__init__(f"interrupted by {signal.Signals(signum).name} at {stage} step {step}/{total}; "
                         f"checkpoint: {checkpoint} (continue with --resume)")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass(frozen=True)
class Stage:
    index: int
    name: str
    datasets: tuple[str, ...]
    epochs: int | None
    steps: int | None
    steps_per_epoch: int | None
    lr_factor: float
    output: Path  # the stage's final model
    start_from: Path | None  # weights the stage starts from (fine-tuning: the joint model)


def plan_stages(config: TrainConfig) -> list[Stage]:
    run_dir, schedule = config.output.dir, config.schedule
    stages = [Stage(0, "main", tuple(config.data.names), schedule.epochs, schedule.steps, schedule.steps_per_epoch,
                    1.0, run_dir / "model.pt", None)]
    if config.finetune is not None:
        ft = config.finetune
        for name in ft.datasets or config.data.names:
            stages.append(Stage(len(stages), f"finetune-{name}", (name,), ft.epochs, ft.steps, None, ft.lr_factor,
                                run_dir / "finetune" / f"{name}.pt", run_dir / "model.pt"))
    return stages


# ------------------------------------------------------------------------------------------- preflight checks


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


def prepare(config: TrainConfig, source: str = "config", resume: bool = False,
            model_fn: ModelFn | None = None, overwrite: bool = False) -> Prepared:
    """Check the model, every path and every dataset split, and the run folder; nothing is written.

    :func:`claim_run_dir` then locks the folder for the run (and checks it again under the lock).
    """

    def fail(field: str, message: str) -> HiersegError:
        return HiersegError(f"{source}: {field}: {message}")

    kwargs = dict(config.model.kwargs)
    if model_fn is None:
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
        for key in kwargs:
            if key not in accepted:
                raise fail(f"model.kwargs.{key}", f"{name} has no such argument; it accepts: {', '.join(accepted)}")
        try:
            check_model_arguments(name, kwargs)
        except ArgumentError as exc:
            raise fail(f"model.kwargs.{exc.key}", exc.reason) from None
        if "datasets" in accepted and "datasets" not in kwargs and "num_classes" not in kwargs:
            kwargs["datasets"] = list(config.data.names)  # the label spaces the run trains on
        if config.model.backbone_weights is not None and "backbone_weights" not in accepted:
            raise fail("model.backbone_weights", f"{name} takes no backbone_weights")

        model_fn = partial(create_model, name)
        takes_taxonomy = "taxonomy" in accepted
    else:
        takes_taxonomy = "taxonomy" in kwargs
    taxonomy = None
    if takes_taxonomy:
        try:
            taxonomy = Taxonomy.load(kwargs.pop("taxonomy", None))
        except HiersegError as exc:
            raise fail("model.kwargs.taxonomy", str(exc)) from None
    if config.model.backbone_weights is not None:
        from hierseg.models.registry import check_backbone_weights

        try:
            check_backbone_weights(config.model.backbone_weights)  # a local file or a hub id; downloads happen at build
        except HiersegError:
            raise fail("model.backbone_weights", f"{config.model.backbone_weights}: no such file (or name hub weights: "
                                                 "timm/<name>, hf-hub:<org>/<repo>)") from None
        kwargs["backbone_weights"] = str(config.model.backbone_weights)
    if config.init.backbone_from is not None and not config.init.backbone_from.is_file():
        raise fail("init.backbone_from", f"{config.init.backbone_from}: no such checkpoint")

    if resume and overwrite:
        raise HiersegError("--resume continues the run in output.dir and --overwrite replaces it; give one of them")
    datasets = {}
    for i, d in enumerate(config.data.datasets):
        datasets[d.name] = _open_dataset(d, config.run.seed, config.data.on_error,
                                         lambda field, msg, i=i: fail(f"data.datasets.{i}{field}", msg), taxonomy)

    if config.output.tensorboard:
        from hierseg.engine.tensorboard import check_available

        check_available()
    resume_stat = _stat(config.output.dir / LAST) if resume else None
    payload = _check_run_dir(config, source, resume, overwrite)
    return Prepared(config, source, datasets, config.model.name, kwargs, taxonomy, model_fn, payload, resume_stat)


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
            print(f"removed {stale}, left by a killed checkpoint save", file=sys.stderr, flush=True)
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


def _open_dataset(d: DatasetConfig, seed: int, on_error: str, fail: Callable[[str, str], HiersegError],
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
                   locked: bool = False) -> dict[str, Any] | None:
    """Refuse a folder another run is writing (its lock), another run's outputs, or a resume that does not fit;
    ``locked``: this process holds the folder's lock already."""
    run_dir = config.output.dir
    last = run_dir / LAST
    writer = distributed.main_process_by_env()  # other DDP ranks would find their own run's rank 0 holding it
    holder = FolderLock.holder(run_dir) if writer and not locked else None
    if holder is not None:
        raise HiersegError(f"{source}: output.dir: {FolderLock(run_dir, 'training run').busy_error(holder)}")
    if not resume:
        if overwrite:
            return None
        if last.exists():
            raise HiersegError(f"{source}: output.dir: {run_dir} already holds a run ({last}); continue it with "
                               "--resume, replace it with --overwrite, or choose another output.dir")
        found = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
        if found:
            raise HiersegError(f"{source}: output.dir: {run_dir} holds another run's outputs ({', '.join(found)}) "
                               f"but no {LAST} to resume; replace them with --overwrite or choose another output.dir")
        return None
    if not last.is_file():
        raise HiersegError(f"{source}: output.dir: {last}: no checkpoint to resume")
    payload = read_checkpoint(last)
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


def _clear_outputs(run_dir: Path) -> None:
    """--overwrite: the previous run's files go before this run writes, so the folder never mixes two runs."""
    for name in (LAST, "model.pt", "metrics.jsonl", "metrics.csv"):
        (run_dir / name).unlink(missing_ok=True)
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


# -------------------------------------------------------------------------------------------------- training


def train(config: TrainConfig, *, source: str = "config", resume: bool = False, model_fn: ModelFn | None = None,
          on_step: StepHook | None = None, overwrite: bool = False) -> dict[str, Path]:
    """Run every stage of ``config``; returns ``{stage name: final checkpoint}``.

    ``model_fn(**kwargs)`` replaces the registry (tests, custom models); ``on_step(record)`` is called on every
    rank after each step; ``overwrite`` replaces another run's outputs in ``output.dir``. Raises
    :class:`Interrupted` after SIGINT/SIGTERM (checkpoint written) and :class:`HiersegError` on bad input, a
    broken sample (unless ``data.on_error: skip``), a run folder in use, or a non-finite loss.
    """
    prepared = prepare(config, source, resume, model_fn, overwrite)
    lock = claim_run_dir(prepared, overwrite)
    try:
        info = distributed.setup(config.run.device)
        try:
            trainer = Trainer(prepared, info, on_step)
            with _stop_on_signals(trainer):
                return trainer.run()
        finally:
            if info.owns_group:
                distributed.cleanup()
    finally:
        if lock is not None:
            lock.release()


@contextmanager
def _stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop after the current step; a second one acts as it normally would."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signums}

    def handler(signum: int, frame: Any) -> None:
        trainer.stop_signal = signum
        for s, h in previous.items():
            signal.signal(s, h)
        if trainer.info.is_main:
            print(f"{signal.Signals(signum).name}: stopping after this step (send it again to stop now)",
                  file=sys.stderr, flush=True)

    for s in signums:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _worker_init(worker_id: int) -> None:
    """Loader workers leave Ctrl-C and a signal to the whole process group to the main process, which stops after
    the step and then shuts them down: they move to a process group of their own and ignore SIGINT. SIGTERM keeps
    its default, because it is how the loader (and Python at exit) ends a worker; ignoring it left a run whose
    worker had failed waiting forever at exit. A worker whose main process dies exits on its own (PyTorch's
    watchdog)."""
    if hasattr(os, "setpgid"):
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def shutdown_workers(batches: Any) -> None:
    """Shut a loader iterator's workers down now. After an error the traceback holds the iterator (its own frames
    are in it) until interpreter exit, where Python terminates the workers and PyTorch's SIGCHLD handler turns
    that into a second error; a clean shutdown first takes them off its watch list."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, prepared: Prepared, info: distributed.DistInfo, on_step: StepHook | None = None) -> None:
        self.p, self.config, self.info, self.on_step = prepared, prepared.config, info, on_step
        self.run_dir = self.config.output.dir
        self.stop_signal = 0
        self.skipped: set[str] = set()  # broken samples skipped under data.on_error: skip
        device = info.device
        precision = self.config.run.precision
        self.bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
        channels_last = self.config.run.channels_last
        self.channels_last = device.type == "cuda" if channels_last is None else channels_last
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes

    # ---- set-up

    def _loader(self, stage: Stage, rank: int, world_size: int) -> tuple[Any, Any]:
        from hierseg.data.loader import multi_dataset_loader

        cfgs = {d.name: d for d in self.config.data.datasets}
        chosen = [cfgs[name] for name in stage.datasets]
        weights = [d.weight for d in chosen] if len(chosen) > 1 and chosen[0].weight is not None else None
        acc = self.config.optim.accumulate
        loader, sampler = multi_dataset_loader(
            [self.p.datasets[name] for name in stage.datasets], [d.batch_size for d in chosen], weights,
            self.config.run.seed, rank, world_size, self.config.data.workers,
            stage.steps_per_epoch * acc if stage.steps_per_epoch else None)
        loader.worker_init_fn = _worker_init
        # Worker seeds from the loader's own generator, so opening a loader mid-epoch after a resume leaves the
        # global RNG (dropout) exactly where an uninterrupted run has it.
        loader.generator = torch.Generator().manual_seed(self.config.run.seed)
        return loader, sampler

    def stage_length(self, stage: Stage, sampler: Any | None = None) -> tuple[int, int]:
        """``(steps per epoch, total steps)`` of a stage, in optimiser steps per rank."""
        from hierseg.data.sampler import MultiDatasetBatchSampler

        acc = self.config.optim.accumulate
        if sampler is None:
            cfgs = {d.name: d for d in self.config.data.datasets}
            chosen = [cfgs[name] for name in stage.datasets]
            weights = [d.weight for d in chosen] if len(chosen) > 1 and chosen[0].weight is not None else None
            try:
                sampler = MultiDatasetBatchSampler(
                    [len(self.p.datasets[name]) for name in stage.datasets], [d.batch_size for d in chosen], weights,
                    0, 0, self.info.world_size, stage.steps_per_epoch * acc if stage.steps_per_epoch else None)
            except HiersegError as exc:
                raise HiersegError(f"{self.p.source}: data.datasets: {exc}") from None
        per_epoch = len(sampler) // acc
        if per_epoch < 1:
            raise HiersegError(f"{self.p.source}: data.datasets: stage {stage.name} has {len(sampler)} batches per "
                               f"epoch and process, fewer than optim.accumulate={acc}")
        return per_epoch, stage.steps if stage.steps is not None else stage.epochs * per_epoch  # type: ignore[operator]

    def build_model(self, stage: Stage) -> nn.Module:
        _seed_everything(self.config.run.seed)  # every rank builds the same initial model
        kwargs = dict(self.p.model_kwargs)
        if self.p.taxonomy is not None:
            kwargs["taxonomy"] = self.p.taxonomy
        model = self.p.model_fn(**kwargs)
        if stage.start_from is not None:
            model.load_state_dict(read_checkpoint(stage.start_from)["state_dict"])
        elif self.config.init.backbone_from is not None:
            load_backbone(model, self.config.init.backbone_from)
        return model

    # ---- the run

    def run(self) -> dict[str, Path]:
        stages = plan_stages(self.config)
        training = (self.p.resume or {}).get("training")
        at = (training["stage"], training["step"]) if training is not None else None  # where the run resumes
        first = 0 if training is None else training["stage"] + (1 if training["done"] else 0)
        del training
        self.offsets = [0]
        for stage in stages:
            self.offsets.append(self.offsets[-1] + self.stage_length(stage)[1])
        self.log, self.tensorboard = None, None
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml",
                              yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False))
            self.log = MetricsLog(self.run_dir, self.config.data.names, at)
            if self.config.output.tensorboard:
                from hierseg.engine.tensorboard import TensorBoardLog

                self.tensorboard = TensorBoardLog(self.run_dir, self.offsets[at[0]] + at[1] + 1 if at else None)
        outputs = {stage.name: stage.output for stage in stages[:first]}
        try:
            for stage in stages[first:]:
                resuming = at is not None and stage.index == at[0]
                outputs[stage.name] = self.run_stage(stage, self.p.resume if resuming else None)
        finally:
            if self.log is not None:
                self.log.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
        if self.skipped and self.info.is_main:
            print(f"skipped {len(self.skipped)} broken sample{'s' if len(self.skipped) > 1 else ''} "
                  "(data.on_error: skip)", file=sys.stderr, flush=True)
        return outputs

    def run_stage(self, stage: Stage, resume: dict[str, Any] | None) -> Path:
        config, info = self.config, self.info
        loader, sampler = self._loader(stage, info.rank, info.world_size)
        per_epoch, total = self.stage_length(stage, sampler)
        model = self.build_model(stage).to(info.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        _seed_everything(config.run.seed + info.rank)
        optimizer = build_optimizer(model, config.optim, stage.lr_factor)
        scheduler = poly_scheduler(optimizer, total, config.optim.power)
        step = 0
        if resume is not None:
            training = resume["training"]
            model.load_state_dict(resume["state_dict"])
            optimizer.load_state_dict(training["optimizer"])
            scheduler.load_state_dict(training["scheduler"])
            restore_rng_state(training["rng"][info.rank])
            step = training["step"]
            self.p.resume = resume = training = None  # free the checkpoint's tensors
        wrapped: nn.Module = model
        if info.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            # DSSPN trains a different sub-graph of neurons for each dataset's batch
            wrapped = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda"
                                              else None, find_unused_parameters=True)
        forward = torch.compile(wrapped) if config.run.compile else wrapped
        if info.is_main:
            print(f"{stage.name}: {self.p.model_name} on {', '.join(stage.datasets)}, {total} steps "
                  f"({per_epoch} per epoch), {info.world_size} x {info.device}"
                  f"{', bf16' if self.bf16 else ''} -> {self.run_dir}"
                  + (f" (resumed at step {step})" if step else ""), file=sys.stderr, flush=True)
        progress = Progress(stage.name, total, step, config.output.log_every, enabled=info.is_main)
        context = dict(stage=stage, model=model, wrapped=wrapped, optimizer=optimizer, scheduler=scheduler,
                       total=total, per_epoch=per_epoch)
        self.last_time = time.perf_counter()
        batches = None
        try:
            while step < total:
                epoch, within = divmod(step, per_epoch)
                sampler.resume(epoch, within * config.optim.accumulate)
                for name in stage.datasets:
                    self.p.datasets[name].set_epoch(epoch)
                batches = iter(loader)
                for _ in range(per_epoch - within):
                    micro = [next(batches) for _ in range(config.optim.accumulate)]
                    self.report_skipped(micro)
                    record, stop = self.train_step(forward, wrapped, optimizer, micro, stage, step, epoch)
                    scheduler.step()
                    step += 1
                    if self.log is not None:
                        self.log.write(record)
                    if self.tensorboard is not None:
                        self.tensorboard.write(record)
                    progress.update(record)
                    if self.on_step is not None:
                        self.on_step(record)
                    if stop and step < total:  # on the last step, the stage finishes and writes its model first
                        path = self.save_resume(context, step)
                        raise Interrupted(stop, path, stage.name, step, total)
                    every = config.output.checkpoint_every
                    if every and step % every == 0 and step < total:
                        self.save_resume(context, step)
                    if step >= total:
                        break
                batches = None
        finally:
            shutdown_workers(batches)
            batches = None
            progress.close()
        if info.is_main:  # the model first: a resume state saying "done" must find it
            save_checkpoint(stage.output, self.p.model_name, self.p.model_kwargs, model, self.p.taxonomy,
                            training={"config": self.config.model_dump(mode="json"), "stage": stage.name,
                                      "step": total, "done": True})
            print(f"{stage.name}: wrote {stage.output}", file=sys.stderr, flush=True)
        self.save_resume(context, total)
        return stage.output

    def report_skipped(self, batches: list[dict[str, Any]]) -> None:
        """data.on_error: skip: the reader warns where it skips (in whichever process); the run counts them."""
        for batch in batches:
            self.skipped.update(batch.get("problems", ()))

    def train_step(self, forward: nn.Module, wrapped: nn.Module, optimizer: torch.optim.Optimizer,
                   micro: list[dict[str, Any]], stage: Stage, step: int, epoch: int) -> tuple[dict[str, Any], int]:
        device = self.info.device
        optimizer.zero_grad(set_to_none=True)
        outs = []
        for j, batch in enumerate(micro):
            image = batch["image"].to(device, non_blocking=True)
            if self.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            label = batch["label"].to(device, non_blocking=True)
            # gradients are all-reduced once per optimiser step, on the last batch
            last = j == len(micro) - 1 or not hasattr(wrapped, "no_sync")
            with nullcontext() if last else wrapped.no_sync():
                with distributed.autocast(device, self.bf16):
                    out = forward(image, label=label, dataset=batch["dataset"])
                (out["loss"] / len(micro)).backward()
            outs.append({k: v.detach() for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1})
        lrs = learning_rates(optimizer)  # the rates this step uses (the scheduler moves them afterwards)
        # one device-to-host copy for every scalar of the step (models may return some terms on the CPU)
        flat = torch.stack([v.float().reshape(()).to(device) for out in outs for v in out.values()]).cpu().tolist()
        entries, k = [], 0
        for batch, out in zip(micro, outs, strict=True):
            values = dict(zip(out, flat[k:k + len(out)], strict=True))
            k += len(out)
            entries.append({"dataset": batch["dataset"], "loss": values.pop("loss"), "terms": values,
                            "images": len(batch["path"]), "paths": batch["path"]})
        gathered = distributed.all_gather_object({"entries": entries, "stop": self.stop_signal})
        everyone = [e for g in gathered for e in g["entries"]]
        for e in everyone:
            if not math.isfinite(e["loss"]):
                raise HiersegError(f"{stage.name} step {step + 1} (epoch {epoch}): loss is {e['loss']} on a "
                                   f"{e['dataset']} batch of {', '.join(e['paths'])}; lower optim.lr_head/"
                                   "optim.lr_backbone, or check those images")
        optimizer.step()
        now = time.perf_counter()
        elapsed, self.last_time = max(now - self.last_time, 1e-9), now
        by_dataset, by_term = defaultdict(list), defaultdict(list)
        for e in everyone:
            by_dataset[e["dataset"]].append(e["loss"])
            for name, value in e["terms"].items():
                by_term[name].append(value)
        images = sum(e["images"] for e in everyone)
        record = {
            "stage": stage.name, "stage_index": stage.index, "step": step + 1,
            "global_step": self.offsets[stage.index] + step + 1, "epoch": epoch,
            "loss": float(np.mean([e["loss"] for e in everyone])),
            "datasets": {name: float(np.mean(v)) for name, v in by_dataset.items()},
            "terms": {name: float(np.mean(v)) for name, v in by_term.items()},
            "lr_head": lrs.get("head", 0.0), "lr_backbone": lrs.get("backbone", 0.0),
            "images": images, "images_per_s": images / elapsed, "time": time.time(),
        }
        stop = next((g["stop"] for g in gathered if g["stop"]), 0)
        return record, stop

    def save_resume(self, context: dict[str, Any], step: int) -> Path:
        """``RUN_DIR/last.pt`` after ``step`` optimiser steps of the stage (a collective: every rank calls it)."""
        stage: Stage = context["stage"]
        rngs = distributed.all_gather_object(rng_state())
        path = self.run_dir / LAST
        if self.info.is_main:
            epoch, within = divmod(step, context["per_epoch"])
            training = {
                "config": self.config.model_dump(mode="json"), "stage": stage.index, "stage_name": stage.name,
                "step": step, "total": context["total"], "epoch": epoch, "done": step >= context["total"],
                "sampler": {"epoch": epoch, "batches_taken": within * self.config.optim.accumulate},
                "optimizer": context["optimizer"].state_dict(), "scheduler": context["scheduler"].state_dict(),
                "rng": rngs, "world_size": self.info.world_size,
            }
            save_checkpoint(path, self.p.model_name, self.p.model_kwargs, context["model"], self.p.taxonomy, training)
        distributed.barrier()
        return path
