"""The hooks of a training run: NaN guard, skipped samples, validation, metrics log, progress, step callback, signal
stop, periodic checkpoint.

They are registered in that order (:meth:`hierseg.engine.train.Trainer.default_hooks`): a non-finite loss stops
the run before the optimiser step and before anything is logged; a signal stops it after the step is logged, with
a resume checkpoint. Each reads the trainer through :class:`TrainingView` and the step through ``trainer.storage``.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.engine.logs import MetricsLog, Progress
from hierseg.engine.train_loop import HookBase, TrainerView

logger = logging.getLogger(__name__)


class StageView(Protocol):
    """What hooks read of the stage being trained."""

    @property
    def name(self) -> str: ...

    @property
    def datasets(self) -> tuple[str, ...]: ...

    @property
    def best(self) -> Path:
        """Where the stage's model at its best validation goes."""


class TrainingView(TrainerView, Protocol):
    """What the hooks of a training run may read and call of :class:`hierseg.engine.train.Trainer`."""

    @property
    def stage(self) -> StageView: ...

    @property
    def model(self) -> nn.Module:
        """The stage's model (unwrapped from DDP)."""

    def save_resume(self, step: int) -> Path:
        """``RUN_DIR/last.pt`` after ``step`` steps of the stage (a collective: every rank calls it)."""

    def save_model(self, path: Path, step: int, done: bool, **training: Any) -> Path:
        """The stage's model after ``step`` steps to ``path`` (the writing process only), ``training`` added to
        what the checkpoint records of the run."""


class TrainingHook(HookBase):
    """A hook of a training run: it sees the trainer as a :class:`TrainingView`."""

    trainer: TrainingView


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run after a step; the resume checkpoint is at ``checkpoint``."""

    def __init__(self, signum: int, checkpoint: Path, stage: str, step: int, total: int) -> None:
        self.signum, self.checkpoint, self.stage, self.step, self.total = signum, checkpoint, stage, step, total
        super().__init__(f"interrupted by {signal.Signals(signum).name} at {stage} step {step}/{total}; "
                         f"checkpoint: {checkpoint} (continue with --resume)")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class NaNGuard(TrainingHook):
    """A non-finite loss on any rank stops every rank before the weights change, naming the step, dataset and
    images."""

    def after_backward(self) -> None:
        t, events = self.trainer, self.trainer.storage
        for e in events.entries:
            if not math.isfinite(e["loss"]):
                raise HiersegError(f"{t.stage.name} step {t.iter + 1} (epoch {events.epoch}): loss is {e['loss']} on a "
                                   f"{e['dataset']} batch of {', '.join(e['paths'])}; lower optim.lr_head/"
                                   "optim.lr_backbone, or check those images")


class MetricsWriter(HookBase):
    """Each step's record to ``metrics.jsonl``/``.csv`` and, when asked, TensorBoard (the writing process only)."""

    def __init__(self, log: MetricsLog | None, tensorboard: Any | None = None) -> None:
        self.log, self.tensorboard = log, tensorboard

    def after_step(self) -> None:
        record = self.trainer.storage.latest()
        if self.log is not None:
            self.log.write(record)
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def after_run(self, completed: bool) -> None:
        self.close()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


class ProgressBar(TrainingHook):
    """A progress line every ``every`` steps of a stage (the writing process only)."""

    def __init__(self, every: int, enabled: bool) -> None:
        self.every, self.enabled = every, enabled
        self.progress: Progress | None = None

    def before_train(self) -> None:
        t = self.trainer
        self.progress = Progress(t.stage.name, t.max_iter, t.start_iter, self.every, enabled=self.enabled)

    def after_step(self) -> None:
        if self.progress is not None:
            self.progress.update(self.trainer.storage.latest())

    def after_train(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None


class StepCallback(HookBase):
    """``fn(record)`` after each step, on every rank (tests, notebooks)."""

    def __init__(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self.fn = fn

    def after_step(self) -> None:
        self.fn(self.trainer.storage.latest())


class SignalStop(TrainingHook):
    """SIGINT/SIGTERM ask the run to stop after the current step (a second one acts as it normally would): the
    step is logged, the resume checkpoint written, and :class:`Interrupted` raised. On a stage's last step the stage
    finishes and writes its model first; the next stage then stops after its first step.

    The handlers are in place from :meth:`before_run` to :meth:`after_run` (the main thread only); the signal a
    process received is raised as the step's ``stop`` flag, which the trainer agrees on across ranks."""

    FLAG = "stop"

    def __init__(self, announce: bool) -> None:
        self.announce = announce
        self.signum = 0  # the signal this process received, 0 before one
        self._previous: dict[int, Any] = {}

    def before_run(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signums = (signal.SIGINT, signal.SIGTERM)
        self._previous = previous = {s: signal.getsignal(s) for s in signums}

        def handler(signum: int, frame: Any) -> None:
            self.signum = signum
            for s, h in previous.items():
                signal.signal(s, h)
            if self.announce:
                logger.warning("%s: stopping after this step (send it again to stop now)", signal.Signals(signum).name)

        for s in signums:
            signal.signal(s, handler)

    def after_run(self, completed: bool) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}

    def step_flags(self) -> dict[str, int]:
        return {self.FLAG: self.signum}

    def after_step(self) -> None:
        t = self.trainer
        step = t.iter + 1
        stop = t.storage.flags.get(self.FLAG, 0)  # a signal any rank received, agreed on in the step
        if stop and step < t.max_iter:
            path = t.save_resume(step)
            raise Interrupted(stop, path, t.stage.name, step, t.max_iter)


class PeriodicCheckpoint(TrainingHook):
    """``RUN_DIR/last.pt`` every ``every`` steps (0: only at the end of each stage and on a signal)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def after_step(self) -> None:
        t = self.trainer
        step = t.iter + 1
        if self.every and step % self.every == 0 and step < t.max_iter:
            t.save_resume(step)


class SkippedSamples(HookBase):
    """``data.on_error: skip``: the reader warns where it skips (in whichever process); the run counts them, across
    a resume too, and says how many at its end (``announce``: the writing process)."""

    def __init__(self, announce: bool = False) -> None:
        self.announce = announce
        self.skipped: set[str] = set()

    def after_step(self) -> None:
        self.skipped.update(self.trainer.storage.problems)

    def after_run(self, completed: bool) -> None:
        count = len(self.skipped)
        if completed and count and self.announce:
            logger.info("skipped %d broken sample%s (data.on_error: skip)", count, "s" if count > 1 else "")

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": sorted(self.skipped)} if self.skipped else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = set(state.get("skipped", ()))
