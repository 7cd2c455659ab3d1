"""The training loop's skeleton, in the manner of detectron2's ``TrainerBase``/``HookBase``.

:class:`TrainerBase` runs steps ``start..max_iter-1``; a subclass defines :meth:`TrainerBase.run_step`. Everything
around the step (logging, progress, checkpoints, stopping) is a :class:`HookBase` registered in order. A hook sees
the trainer only through :class:`TrainerView` (a training run's hooks through the wider
:class:`hierseg.engine.hooks.TrainingView`) and what the step reported through ``trainer.storage``
(:class:`hierseg.engine.events.EventStorage`); it keeps its own state, and one with state to carry over a resume
returns it from :meth:`HookBase.state_dict`, which the trainer stores in the resume checkpoint under the hook's
class name. The loop calls every hook alike and knows none by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from hierseg.engine.events import EventStorage


class TrainerView(Protocol):
    """What every hook may read of the trainer: where the stage is, and the step's events."""

    @property
    def iter(self) -> int:
        """The 0-based step being run (``iter + 1`` steps are done in ``after_step``)."""

    @property
    def start_iter(self) -> int:
        """The step the stage started (or resumed) at."""

    @property
    def max_iter(self) -> int:
        """The number of steps of the stage."""

    @property
    def storage(self) -> EventStorage:
        """What the current step reported."""


class HookBase:
    """Called by the trainer around each step; ``self.trainer`` is set when the hook is registered.

    ``trainer.iter`` is the 0-based index of the step being run (``trainer.iter + 1`` steps are done in
    :meth:`after_step`), ``trainer.max_iter`` the number of steps of the stage.
    """

    trainer: TrainerView

    def before_run(self) -> None:
        """Once, before the first stage (a run may have several, each a :meth:`before_train`..:meth:`after_train`)."""

    def after_run(self, completed: bool) -> None:
        """Once, after the last stage (``completed``) or when the run stopped early; close what the hook holds."""

    def before_train(self) -> None:
        """Before the first step of a stage."""

    def after_train(self) -> None:
        """After the last step of a stage, or after a step raised."""

    def before_step(self) -> None:
        """Before each step."""

    def after_backward(self) -> None:
        """After the step's backward pass and before the optimiser updates the weights."""

    def after_step(self) -> None:
        """After each step (the weights and the schedule updated)."""

    def step_flags(self) -> dict[str, int]:
        """Flags this process raises in the current step (non-zero: raised). The trainer agrees on them across
        ranks (a flag is the first non-zero value any rank raised) into ``storage.flags`` before
        :meth:`after_backward`, so every rank acts on it at the same step."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What an exactly resumed run needs of this hook (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s result."""


class TrainerBase:
    """Runs :meth:`run_step` between the hooks' calls; see the module docstring."""

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage = EventStorage()

    @property
    def hooks(self) -> tuple[HookBase, ...]:
        return tuple(self._hooks)

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        """Append ``hooks`` (None entries are skipped); they are called in registration order."""
        for hook in hooks:
            if hook is not None:
                hook.trainer = self
                self._hooks.append(hook)

    def train(self, start_iter: int, max_iter: int) -> None:
        """Steps ``start_iter`` to ``max_iter - 1``; the hooks' ``after_train`` runs whatever happens."""
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        self.before_train()
        try:
            for self.iter in range(start_iter, max_iter):
                self.before_step()
                self.run_step()
                self.after_step()
            self.iter = max_iter
        finally:
            self.after_train()

    def run_step(self) -> None:
        raise NotImplementedError

    def before_run(self) -> None:
        for hook in self._hooks:
            hook.before_run()

    def after_run(self, completed: bool) -> None:
        for hook in self._hooks:
            hook.after_run(completed)

    def step_flags(self) -> dict[str, int]:
        """The flags every hook raises in this step (see :meth:`HookBase.step_flags`)."""
        return {name: value for hook in self._hooks for name, value in hook.step_flags().items()}

    def before_train(self) -> None:
        for hook in self._hooks:
            hook.before_train()

    def after_train(self) -> None:
        for hook in self._hooks:
            hook.after_train()

    def before_step(self) -> None:
        for hook in self._hooks:
            hook.before_step()

    def after_backward(self) -> None:
        for hook in self._hooks:
            hook.after_backward()

    def after_step(self) -> None:
        for hook in self._hooks:
            hook.after_step()

    def hook_states(self) -> dict[str, dict[str, Any]]:
        """The hooks' non-empty states, by class name, for the resume checkpoint."""
        return {type(hook).__name__: state for hook in self._hooks if (state := hook.state_dict())}

    def load_hook_states(self, states: dict[str, dict[str, Any]]) -> None:
        for hook in self._hooks:
            hook.load_state_dict(states.get(type(hook).__name__, {}))
