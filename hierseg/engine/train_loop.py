"""The training loop's skeleton, in the manner of detectron2's ``TrainerBase``/``HookBase``.

:class:`TrainerBase` runs steps ``start..max_iter-1``; a subclass defines :meth:`TrainerBase.run_step`. Everything
around the step (logging, progress, checkpoints, stopping) is a :class:`HookBase` registered in order; a hook with
state to carry over a resume returns it from :meth:`HookBase.state_dict`, and the trainer stores it in the resume
checkpoint under the hook's class name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class HookBase:
    """Called by the trainer around each step; ``self.trainer`` is set when the hook is registered.

    ``trainer.iter`` is the 0-based index of the step being run (``trainer.iter + 1`` steps are done in
    :meth:`after_step`), ``trainer.max_iter`` the number of steps of the stage.
    """

    trainer: Any = None

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
