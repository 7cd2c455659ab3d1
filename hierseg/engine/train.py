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
    RUN_DIR/best.pt               with eval.best: the main stage's model at its best validation (finetune/<name>.best.pt)
    RUN_DIR/metrics.jsonl, .csv   one record per optimiser step (with eval.every, the validation's figures in it)

Everything a step does depends only on the seed, the step number and the checkpointed state: the sampler's order
and the augmentations are functions of ``(seed, epoch, index)``, and the loader draws its worker seeds from its own
generator. Resuming therefore gives the same losses as never stopping.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_text
from hierseg.data.loader import shutdown_workers
from hierseg.engine import distributed
from hierseg.engine.checkpoint import load_backbone, read_checkpoint, restore_rng_state, rng_state, save_checkpoint
from hierseg.engine.config import TrainConfig
from hierseg.engine.events import BatchEntry
from hierseg.engine.hooks import (
    Interrupted,
    MetricsWriter,
    NaNGuard,
    PeriodicCheckpoint,
    ProgressBar,
    SignalStop,
    SkippedSamples,
    StepCallback,
)
from hierseg.engine.logs import MetricsLog
from hierseg.engine.optim import build_optimizer, learning_rates, poly_scheduler
from hierseg.engine.preflight import LAST, ModelFn, Prepared, claim_run_dir, prepare
from hierseg.engine.train_loop import HookBase, TrainerBase

__all__ = ["Interrupted", "Stage", "StageState", "StepHook", "Trainer", "plan_stages", "train"]

StepHook = Callable[[dict[str, Any]], None]

logger = logging.getLogger(__name__)


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
    best: Path  # the stage's model at its best validation (eval.best)


def plan_stages(config: TrainConfig) -> list[Stage]:
    run_dir, schedule = config.output.dir, config.schedule
    stages = [Stage(0, "main", tuple(config.data.names), schedule.epochs, schedule.steps, schedule.steps_per_epoch,
                    1.0, run_dir / "model.pt", None, run_dir / "best.pt")]
    if config.finetune is not None:
        ft = config.finetune
        for name in ft.datasets or config.data.names:
            stages.append(Stage(len(stages), f"finetune-{name}", (name,), ft.epochs, ft.steps, None, ft.lr_factor,
                                run_dir / "finetune" / f"{name}.pt", run_dir / "model.pt",
                                run_dir / "finetune" / f"{name}.best.pt"))
    return stages


def train(config: TrainConfig, *, source: str = "config", resume: bool = False, model_fn: ModelFn | None = None,
          on_step: StepHook | None = None, overwrite: bool = False, trust_checkpoints: bool = False) -> dict[str, Path]:
    """Run every stage of ``config``; returns ``{stage name: final checkpoint}``.

    ``model_fn(**kwargs)`` replaces the registry (tests, custom models); ``on_step(record)`` is called on every
    rank after each step; ``overwrite`` replaces another run's outputs in ``output.dir``; ``trust_checkpoints``
    reads a resume checkpoint or ``init.backbone_from`` without a digest (older hierseg's; never runs code). Raises
    :class:`Interrupted` after SIGINT/SIGTERM (checkpoint written) and :class:`HiersegError` on bad input, a
    broken sample (unless ``data.on_error: skip``), a run folder in use, or a non-finite loss.
    """
    prepared = prepare(config, source, resume, model_fn, overwrite, trust_checkpoints)
    lock = claim_run_dir(prepared, overwrite)
    try:
        info = distributed.setup(config.run.device)
        try:
            return Trainer(prepared, info, on_step).run()
        finally:
            if info.owns_group:
                distributed.cleanup()
    finally:
        if lock is not None:
            lock.release()


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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class StageState:
    """What one stage trains with."""

    stage: Stage
    loader: Any
    sampler: Any
    per_epoch: int  # optimiser steps per epoch and process
    total: int  # optimiser steps of the stage
    model: nn.Module
    wrapped: nn.Module  # the model, or its DDP wrapper
    forward: nn.Module  # ``wrapped``, or its torch.compile result
    optimizer: torch.optim.Optimizer
    scheduler: Any


class Trainer(TrainerBase):
    """The run's stages, one after the other; each is :meth:`TrainerBase.train` over its steps with the hooks of
    :meth:`default_hooks`. :meth:`run_step` is one optimiser step (``optim.accumulate`` batches)."""

    def __init__(self, prepared: Prepared, info: distributed.DistInfo, on_step: StepHook | None = None) -> None:
        super().__init__()
        self.p, self.config, self.info, self.on_step = prepared, prepared.config, info, on_step
        self.run_dir = self.config.output.dir
        device = info.device
        precision = self.config.run.precision
        self.bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
        channels_last = self.config.run.channels_last
        self.channels_last = device.type == "cuda" if channels_last is None else channels_last
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes
        self.offsets: list[int] = [0]  # global step of each stage's first step
        self.state: StageState | None = None
        self._batches: Any = None  # the loader's iterator over the current epoch
        self.last_time = 0.0

    @property
    def stage(self) -> Stage:
        assert self.state is not None
        return self.state.stage

    @property
    def model(self) -> nn.Module:
        assert self.state is not None
        return self.state.model

    def default_hooks(self, writer: MetricsWriter) -> list[HookBase | None]:
        validation = None
        if self.config.eval.every:
            from hierseg.engine.validation import PeriodicEval

            # before the writer: the step's record carries the figures
            validation = PeriodicEval(self.config.eval, {d.name: d.root for d in self.config.data.datasets},
                                      self.info.device, self.info.is_main)
        is_main = self.info.is_main
        return [NaNGuard(), SkippedSamples(announce=is_main), validation, writer,
                ProgressBar(self.config.output.log_every, is_main),
                StepCallback(self.on_step) if self.on_step is not None else None, SignalStop(announce=is_main),
                PeriodicCheckpoint(self.config.output.checkpoint_every)]

    # ---- set-up

    def _sampler_args(self, stage: Stage) -> tuple[list[int], list[float] | None, int | None]:
        """Per-dataset batch sizes, sampling weights (several datasets with weights given) and batches per epoch."""
        cfgs = {d.name: d for d in self.config.data.datasets}
        chosen = [cfgs[name] for name in stage.datasets]
        weights = [d.weight for d in chosen] if len(chosen) > 1 and chosen[0].weight is not None else None
        per_epoch = stage.steps_per_epoch * self.config.optim.accumulate if stage.steps_per_epoch else None
        return [d.batch_size for d in chosen], weights, per_epoch

    def _loader(self, stage: Stage, rank: int, world_size: int) -> tuple[Any, Any]:
        from hierseg.data.loader import multi_dataset_loader

        sizes, weights, per_epoch = self._sampler_args(stage)
        loader, sampler = multi_dataset_loader(
            [self.p.datasets[name] for name in stage.datasets], sizes, weights,
            self.config.run.seed, rank, world_size, self.config.data.workers, per_epoch)
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
            sizes, weights, per_epoch = self._sampler_args(stage)
            try:
                sampler = MultiDatasetBatchSampler([len(self.p.datasets[name]) for name in stage.datasets], sizes,
                                                   weights, 0, 0, self.info.world_size, per_epoch)
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
            model.load_state_dict(read_checkpoint(stage.start_from, trust=self.p.trust_checkpoints)["state_dict"])
        elif self.config.init.backbone_from is not None:
            load_backbone(model, self.config.init.backbone_from, trust=self.p.trust_checkpoints)
        return model

    # ---- the run

    def run(self) -> dict[str, Path]:
        stages = plan_stages(self.config)
        training = (self.p.resume or {}).get("training")
        at = (training["stage"], training["step"]) if training is not None else None  # where the run resumes
        first = 0 if training is None else training["stage"] + (1 if training["done"] else 0)
        for stage in stages:
            self.offsets.append(self.offsets[-1] + self.stage_length(stage)[1])
        self.register_hooks(self.default_hooks(self._open_logs(at)))
        if training is not None:
            self.load_hook_states(training.get("hooks", {}))
        del training
        outputs = {stage.name: stage.output for stage in stages[:first]}
        completed = False
        self.before_run()
        try:
            for stage in stages[first:]:
                resuming = at is not None and stage.index == at[0]
                outputs[stage.name] = self.run_stage(stage, self.p.resume if resuming else None)
            completed = True
        finally:
            self.after_run(completed)
        return outputs

    def _open_logs(self, at: tuple[int, int] | None) -> MetricsWriter:
        """The run's config, metrics log and TensorBoard log, in the writing process (kept up to ``at`` on resume)."""
        if not self.info.is_main:
            return MetricsWriter(None)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(self.config.model_dump(mode="json"),
                                                                        sort_keys=False))
        log = MetricsLog(self.run_dir, self.config.data.names, at, validated=self.config.eval.every > 0)
        tensorboard = None
        if self.config.output.tensorboard:
            from hierseg.engine.tensorboard import TensorBoardLog

            tensorboard = TensorBoardLog(self.run_dir, self.offsets[at[0]] + at[1] + 1 if at else None)
        return MetricsWriter(log, tensorboard)

    def run_stage(self, stage: Stage, resume: dict[str, Any] | None) -> Path:
        self.state, start = self._start_stage(stage, resume)
        if self.info.is_main:
            logger.info("%s: %s on %s, %d steps (%d per epoch), %d x %s%s -> %s%s", stage.name, self.p.model_name,
                        ", ".join(stage.datasets), self.state.total, self.state.per_epoch, self.info.world_size,
                        self.info.device, ", bf16" if self.bf16 else "", self.run_dir,
                        f" (resumed at step {start})" if start else "")
        self.last_time = time.perf_counter()
        self.train(start, self.state.total)
        if self.info.is_main:  # the model first: a resume state saying "done" must find it
            self.save_model(stage.output, self.state.total, done=True)
            logger.info("%s: wrote %s", stage.name, stage.output)
        self.save_resume(self.state.total)
        return stage.output

    def save_model(self, path: Path, step: int, done: bool, **training: Any) -> Path:
        """The stage's model after ``step`` steps to ``path``, with the run's config; ``training`` adds to what the
        checkpoint records (the writing process calls it)."""
        return save_checkpoint(path, self.p.model_name, self.p.model_kwargs, self.model, self.p.taxonomy,
                               training={"config": self.config.model_dump(mode="json"), "stage": self.stage.name,
                                         "step": step, "done": done, **training})

    def _start_stage(self, stage: Stage, resume: dict[str, Any] | None) -> tuple[StageState, int]:
        """The stage's loader, model, optimiser and schedule, restored from ``resume``; returns them and the step to
        start at."""
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
        return StageState(stage, loader, sampler, per_epoch, total, model, wrapped, forward, optimizer, scheduler), step

    def after_train(self) -> None:
        shutdown_workers(self._batches)
        self._batches = None
        super().after_train()

    # ---- the step

    def run_step(self) -> None:
        state = self.state
        assert state is not None
        micro, epoch = self._next_batches(state)
        outs = self._forward_backward(state, micro)
        lrs = learning_rates(state.optimizer)  # the rates this step uses (the scheduler moves them afterwards)
        entries, flags = self._gather(micro, outs)
        problems = [p for batch in micro for p in batch.get("problems", ())]
        self.storage.begin_step(self.iter, epoch, entries, problems, flags)
        self.after_backward()
        state.optimizer.step()
        self.storage.put_record(self._record(lrs))
        state.scheduler.step()

    def _next_batches(self, state: StageState) -> tuple[list[dict[str, Any]], int]:
        """The step's ``optim.accumulate`` batches and its epoch; a new epoch opens a new loader iterator."""
        acc = self.config.optim.accumulate
        epoch, within = divmod(self.iter, state.per_epoch)
        if self._batches is None or within == 0:
            self._batches = None
            state.sampler.resume(epoch, within * acc)
            for name in state.stage.datasets:
                self.p.datasets[name].set_epoch(epoch)
            self._batches = iter(state.loader)
        return [next(self._batches) for _ in range(acc)], epoch

    def _forward_backward(self, state: StageState, micro: list[dict[str, Any]]) -> list[dict[str, torch.Tensor]]:
        """Gradients of the step's batches (averaged); returns each batch's scalar loss terms, detached."""
        device = self.info.device
        state.optimizer.zero_grad(set_to_none=True)
        outs = []
        for j, batch in enumerate(micro):
            image = batch["image"].to(device, non_blocking=True)
            if self.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            label = batch["label"].to(device, non_blocking=True)
            # gradients are all-reduced once per optimiser step, on the last batch
            last = j == len(micro) - 1 or not hasattr(state.wrapped, "no_sync")
            with nullcontext() if last else state.wrapped.no_sync():
                with distributed.autocast(device, self.bf16):
                    out = state.forward(image, label=label, dataset=batch["dataset"])
                (out["loss"] / len(micro)).backward()
            outs.append({k: v.detach() for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1})
        return outs

    def _gather(self, micro: list[dict[str, Any]],
                outs: list[dict[str, torch.Tensor]]) -> tuple[list[BatchEntry], dict[str, int]]:
        """Every rank's batch entries, and the hooks' flags agreed across ranks (each the first non-zero value any
        rank raised)."""
        device = self.info.device
        # one device-to-host copy for every scalar of the step (models may return some terms on the CPU)
        flat = torch.stack([v.float().reshape(()).to(device) for out in outs for v in out.values()]).cpu().tolist()
        entries, k = [], 0
        for batch, out in zip(micro, outs, strict=True):
            values = dict(zip(out, flat[k:k + len(out)], strict=True))
            k += len(out)
            entries.append({"dataset": batch["dataset"], "loss": values.pop("loss"), "terms": values,
                            "images": len(batch["path"]), "paths": batch["path"]})
        gathered = distributed.all_gather_object({"entries": entries, "flags": self.step_flags()})
        flags = {name: next((g["flags"][name] for g in gathered if g["flags"].get(name)), 0)
                 for name in dict.fromkeys(name for g in gathered for name in g["flags"])}
        return [e for g in gathered for e in g["entries"]], flags

    def _record(self, lrs: dict[str, float]) -> dict[str, Any]:
        """The step's line of ``metrics.jsonl``: losses averaged over ranks, per dataset and per term."""
        now = time.perf_counter()
        elapsed, self.last_time = max(now - self.last_time, 1e-9), now
        events = self.storage
        by_dataset, by_term = defaultdict(list), defaultdict(list)
        for e in events.entries:
            by_dataset[e["dataset"]].append(e["loss"])
            for name, value in e["terms"].items():
                by_term[name].append(value)
        images = sum(e["images"] for e in events.entries)
        stage, step = self.stage, self.iter
        return {
            "stage": stage.name, "stage_index": stage.index, "step": step + 1,
            "global_step": self.offsets[stage.index] + step + 1, "epoch": events.epoch,
            "loss": float(np.mean([e["loss"] for e in events.entries])),
            "datasets": {name: float(np.mean(v)) for name, v in by_dataset.items()},
            "terms": {name: float(np.mean(v)) for name, v in by_term.items()},
            "lr_head": lrs.get("head", 0.0), "lr_backbone": lrs.get("backbone", 0.0),
            "images": images, "images_per_s": images / elapsed, "time": time.time(),
        }

    def save_resume(self, step: int) -> Path:
        """``RUN_DIR/last.pt`` after ``step`` optimiser steps of the stage (a collective: every rank calls it)."""
        state = self.state
        assert state is not None
        rngs = distributed.all_gather_object(rng_state())
        path = self.run_dir / LAST
        if self.info.is_main:
            epoch, within = divmod(step, state.per_epoch)
            training = {
                "config": self.config.model_dump(mode="json"), "stage": state.stage.index,
                "stage_name": state.stage.name, "step": step, "total": state.total, "epoch": epoch,
                "done": step >= state.total,
                "sampler": {"epoch": epoch, "batches_taken": within * self.config.optim.accumulate},
                "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
                "rng": rngs, "world_size": self.info.world_size,
            }
            hooks = self.hook_states()
            if hooks:
                training["hooks"] = hooks
            save_checkpoint(path, self.p.model_name, self.p.model_kwargs, state.model, self.p.taxonomy, training)
        distributed.barrier()
        return path
