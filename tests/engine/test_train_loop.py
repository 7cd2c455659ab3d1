"""The trainer skeleton: hooks around each step, in order, and their states for a resume."""

from __future__ import annotations

import pytest

from hierseg.engine.train_loop import HookBase, TrainerBase


class Recorder(HookBase):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def before_train(self):
        self.calls.append(f"{self.name}.before_train@{self.trainer.iter}")

    def before_step(self):
        self.calls.append(f"{self.name}.before_step@{self.trainer.iter}")

    def after_backward(self):
        self.calls.append(f"{self.name}.after_backward@{self.trainer.iter}")

    def after_step(self):
        self.calls.append(f"{self.name}.after_step@{self.trainer.iter}")

    def after_train(self):
        self.calls.append(f"{self.name}.after_train@{self.trainer.iter}")


class Counting(TrainerBase):
    def __init__(self, calls: list[str], fail_at: int | None = None) -> None:
        super().__init__()
        self.calls, self.fail_at = calls, fail_at

    def run_step(self):
        if self.iter == self.fail_at:
            raise RuntimeError("step failed")
        self.calls.append(f"step@{self.iter}")
        self.after_backward()


def test_hooks_run_in_registration_order_around_each_step():
    calls: list[str] = []
    trainer = Counting(calls)
    trainer.register_hooks([Recorder("a", calls), None, Recorder("b", calls)])
    trainer.train(3, 5)
    assert calls == [
        "a.before_train@3", "b.before_train@3",
        "a.before_step@3", "b.before_step@3", "step@3", "a.after_backward@3", "b.after_backward@3",
        "a.after_step@3", "b.after_step@3",
        "a.before_step@4", "b.before_step@4", "step@4", "a.after_backward@4", "b.after_backward@4",
        "a.after_step@4", "b.after_step@4",
        "a.after_train@5", "b.after_train@5"]


def test_after_train_runs_when_a_step_raises():
    calls: list[str] = []
    trainer = Counting(calls, fail_at=1)
    trainer.register_hooks([Recorder("a", calls)])
    with pytest.raises(RuntimeError, match="step failed"):
        trainer.train(0, 4)
    assert calls[-1] == "a.after_train@1" and "step@1" not in calls


class Stateful(HookBase):
    def __init__(self) -> None:
        self.seen: list[int] = []

    def after_step(self):
        self.seen.append(self.trainer.iter)

    def state_dict(self):
        return {"seen": list(self.seen)} if self.seen else {}

    def load_state_dict(self, state):
        self.seen = list(state.get("seen", []))


def test_hook_states_carry_over_a_resume():
    first = Counting([])
    first.register_hooks([Stateful(), Recorder("r", [])])
    assert first.hook_states() == {}  # stateless hooks, and an empty state, store nothing
    first.train(0, 2)
    saved = first.hook_states()
    assert saved == {"Stateful": {"seen": [0, 1]}}
    resumed = Counting([])
    hook = Stateful()
    resumed.register_hooks([hook])
    resumed.load_hook_states(saved)
    resumed.train(2, 4)
    assert hook.seen == [0, 1, 2, 3]


class Reporter(HookBase):
    """Puts a figure into the step's record, as validation does."""

    def after_step(self):
        self.trainer.storage.put_scalars("eval", {"x/mIoU": self.trainer.iter / 10})


class Reader(HookBase):
    def __init__(self) -> None:
        self.records: list[dict] = []

    def after_step(self):
        self.records.append(dict(self.trainer.storage.latest()))


class Recording(Counting):
    """Puts a record per step into the storage, as the training loop does."""

    def run_step(self) -> None:
        super().run_step()
        self.storage.begin_step(self.iter, 0, [], (), {})
        self.storage.put_record({"step": self.iter + 1})


def test_a_hook_reads_what_an_earlier_one_reported_in_the_step_through_the_storage():
    trainer = Recording([])
    reader = Reader()
    trainer.register_hooks([Reporter(), reader])
    trainer.train(0, 2)
    assert reader.records == [{"step": 1, "eval": {"x/mIoU": 0.0}}, {"step": 2, "eval": {"x/mIoU": 0.1}}]


class Flagging(HookBase):
    def __init__(self, flags: dict[str, int]) -> None:
        self.flags = flags

    def step_flags(self):
        return self.flags


def test_the_trainer_collects_every_hooks_flags_without_knowing_the_hooks():
    trainer = Counting([])
    trainer.register_hooks([Flagging({"stop": 0}), Recorder("r", []), Flagging({"other": 2})])
    assert trainer.step_flags() == {"stop": 0, "other": 2}


def test_run_hooks_see_the_run_begin_and_end_with_its_outcome():
    calls: list[str] = []

    class Run(HookBase):
        def before_run(self):
            calls.append("before_run")

        def after_run(self, completed):
            calls.append(f"after_run({completed})")

    trainer = Counting(calls, fail_at=0)
    trainer.register_hooks([Run()])
    trainer.before_run()
    with pytest.raises(RuntimeError):
        trainer.train(0, 1)
    trainer.after_run(False)
    assert calls == ["before_run", "after_run(False)"]


def test_the_training_loop_names_hooks_only_where_it_registers_them():
    """train.py builds its hooks in ``default_hooks`` (the metrics writer in ``_open_logs``); nowhere else does it
    name a hook class, so it cannot read a hook's attributes or test its type."""
    import ast
    from pathlib import Path

    import hierseg.engine.hooks as hooks
    import hierseg.engine.validation as validation

    hook_classes = {name for module in (hooks, validation) for name, value in vars(module).items()
                    if isinstance(value, type) and issubclass(value, HookBase) and value.__module__ == module.__name__}
    assert {"SignalStop", "SkippedSamples", "PeriodicEval", "MetricsWriter"} <= hook_classes
    tree = ast.parse(Path(hooks.__file__).with_name("train.py").read_text(encoding="utf-8"))
    allowed = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
               and node.name in ("default_hooks", "_open_logs")]
    inside = {id(n) for fn in allowed for n in ast.walk(fn)}
    named = [f"line {node.lineno}: {node.id}" for node in ast.walk(tree)
             if isinstance(node, ast.Name) and node.id in hook_classes and id(node) not in inside]
    assert named == []
