"""Validation during training (``eval.every``): the figures in the step's record, a run that trains exactly as one
without validation, ``best.pt`` by a chosen metric, an exact resume of it, and the pre-flight refusals."""

from __future__ import annotations

import os
import shutil
import signal
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.engine import validation
from hierseg.engine.checkpoint import read_checkpoint
from hierseg.engine.config import load_config
from hierseg.engine.evaluate import evaluate
from hierseg.engine.logs import read_metrics
from hierseg.engine.preflight import prepare
from hierseg.engine.train import Interrupted, train
from tests.conftest import run_cli
from tests.engine.test_train import DATASETS, Tiny, losses, make_config, write_synth

LIMIT = 3  # validation images per dataset


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return write_synth(tmp_path_factory.mktemp("synth"))


def saved(path: Path, datasets: tuple[str, ...] = ("cityscapes",)) -> Tiny:
    model = Tiny(datasets)
    model.load_state_dict(read_checkpoint(path)["state_dict"])
    return model


class TinyDropout(Tiny):
    """Tiny with dropout: its training draws from torch's generator, which a validation must leave alone."""

    def __init__(self, datasets: tuple[str, ...] = ("cityscapes",)) -> None:
        super().__init__(datasets)
        self.backbone.append(nn.Dropout2d(0.2))


def validated(run_dir: Path) -> dict[int, dict[str, float]]:
    """Global step -> the figures of the steps that validated."""
    return {r["global_step"]: r["eval"] for r in read_metrics(run_dir) if "eval" in r}


def test_validation_every_n_steps_is_logged_and_leaves_training_unchanged(synth_root, tmp_path):
    plain = make_config(synth_root, tmp_path / "plain", schedule={"steps": 8})
    train(plain, model_fn=lambda **kw: TinyDropout())
    config = make_config(synth_root, tmp_path / "run", schedule={"steps": 8}, eval={"every": 3, "limit": LIMIT},
                         output={"tensorboard": True})
    train(config, model_fn=lambda **kw: TinyDropout())

    assert losses(tmp_path / "run") == losses(tmp_path / "plain")  # to the bit: dropout masks unchanged
    figures = validated(tmp_path / "run")
    assert sorted(figures) == [3, 6, 8]  # every 3 steps, and after the last
    # the last figures are those of the saved model, scored apart on the same images
    model = saved(tmp_path / "run" / "model.pt")
    report = evaluate(model, "cityscapes", synth_root / "cityscapes", "val", limit=LIMIT, device="cpu")
    assert report.images == LIMIT
    assert figures[8]["cityscapes/mIoU"] == report.metrics.miou
    assert figures[8]["cityscapes/pixel_acc"] == report.metrics.pixel_acc
    assert figures[8]["mean/mIoU"] == report.metrics.miou  # one dataset: its own
    assert figures[8]["cityscapes/category_mIoU"] == report.metrics.category_miou  # Cityscapes' categories

    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = [row.split(",")[header.index("val_cityscapes_miou")] for row in rows[1:]]
    assert [i + 1 for i, v in enumerate(column) if v] == [3, 6, 8]
    assert float(column[7]) == report.metrics.miou

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("val/cityscapes/mIoU")
    assert [e.step for e in scalars] == [3, 6, 8]
    assert scalars[-1].value == pytest.approx(report.metrics.miou)


def test_best_checkpoint_is_the_model_at_the_best_validation_of_each_stage(synth_root, tmp_path):
    config = make_config(synth_root, tmp_path / "run", DATASETS, schedule={"steps": 6}, finetune={"steps": 2},
                         eval={"every": 2, "limit": 2, "best": "mean/mIoU"}, optim={"lr_head": 0.2})
    train(config, model_fn=lambda **kw: Tiny(DATASETS))
    records = [r for r in read_metrics(tmp_path / "run") if "eval" in r]
    main = [r for r in records if r["stage"] == "main"]
    assert [r["step"] for r in main] == [2, 4, 6]
    for r in main:  # the mean over both datasets
        assert r["eval"]["mean/mIoU"] == statistics.fmean([r["eval"][f"{d}/mIoU"] for d in DATASETS])
    top = max(r["eval"]["mean/mIoU"] for r in main)
    first = next(r for r in main if r["eval"]["mean/mIoU"] == top)

    payload = read_checkpoint(tmp_path / "run" / "best.pt")
    assert payload["training"]["best"] == {"metric": "mean/mIoU", "value": top}
    assert payload["training"]["step"] == first["step"] and payload["training"]["stage"] == "main"
    model = saved(tmp_path / "run" / "best.pt", DATASETS)  # the weights of that step, scored apart
    scores = [evaluate(model, d, synth_root / d, "val", limit=2, device="cpu").metrics.miou for d in DATASETS]
    assert statistics.fmean(scores) == pytest.approx(top, abs=1e-12)

    for name in DATASETS:  # a fine-tuning stage validates its own dataset and keeps its own best
        stage = [r for r in records if r["stage"] == f"finetune-{name}"]
        assert [r["step"] for r in stage] == [2] and all(set(r["eval"]) >= {f"{name}/mIoU"} for r in stage)
        assert not any(f"{other}/mIoU" in r["eval"] for r in stage for other in DATASETS if other != name)
        best = read_checkpoint(tmp_path / "run" / "finetune" / f"{name}.best.pt")["training"]
        assert best["best"]["value"] == max(r["eval"]["mean/mIoU"] for r in stage)


def test_resume_keeps_the_best_checkpoint_of_before_the_stop(synth_root, tmp_path, monkeypatch):
    """The figures fall after the first validation: the best model is the one of step 2, also after a stop at step
    4 and a resume (a hook that forgot its state would take step 6 for the best)."""
    def scripted(values: list[float]):
        sequence = iter(values)

        def fake(*args: Any, **kwargs: Any) -> tuple[dict[str, float], int]:
            return {"mIoU": next(sequence)}, LIMIT
        return fake

    def config(out: Path):
        return make_config(synth_root, out, schedule={"steps": 8}, eval={"every": 2, "best": "cityscapes/mIoU"})

    falling = [0.5, 0.4, 0.3, 0.2]
    monkeypatch.setattr(validation, "validate", scripted(falling))
    train(config(tmp_path / "straight"), model_fn=lambda **kw: Tiny())
    straight = read_checkpoint(tmp_path / "straight" / "best.pt")["training"]
    assert straight["step"] == 2 and straight["best"]["value"] == 0.5

    def stop_at_3(record: dict[str, Any]) -> None:
        if record["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(validation, "validate", scripted(falling))  # one sequence for both halves of the run
    with pytest.raises(Interrupted) as info:
        train(config(tmp_path / "stopped"), model_fn=lambda **kw: Tiny(), on_step=stop_at_3)
    assert info.value.step in (3, 4)
    hooks = read_checkpoint(tmp_path / "stopped" / "last.pt")["training"]["hooks"]
    assert hooks["PeriodicEval"] == {"metric": "cityscapes/mIoU", "best": {"main": {"value": 0.5, "step": 2}}}
    train(config(tmp_path / "stopped"), resume=True, model_fn=lambda **kw: Tiny())

    resumed = read_checkpoint(tmp_path / "stopped" / "best.pt")["training"]
    assert (resumed["step"], resumed["best"]) == (straight["step"], straight["best"])
    assert validated(tmp_path / "stopped") == validated(tmp_path / "straight")
    assert losses(tmp_path / "stopped") == pytest.approx(losses(tmp_path / "straight"), abs=1e-6, rel=0)


def test_best_by_severity_keeps_the_lowest(synth_root, tmp_path, monkeypatch):
    """severity/mean (levels to the common ancestor) is better when lower: best.pt is the step of the least."""
    values = iter([2.0, 1.5, 1.8, 1.7])
    monkeypatch.setattr(validation, "validate",
                        lambda *a, **k: ({"mIoU": 0.5, "severity/mean": next(values)}, LIMIT))
    train(make_config(synth_root, tmp_path / "run", schedule={"steps": 8},
                      eval={"every": 2, "best": "cityscapes/severity/mean"}), model_fn=lambda **kw: Tiny())
    best = read_checkpoint(tmp_path / "run" / "best.pt")["training"]
    assert best["step"] == 4 and best["best"] == {"metric": "cityscapes/severity/mean", "value": 1.5}


def write_config(path: Path, root: Path, out: Path, **sections: Any) -> Path:
    raw = {"model": {"name": "deeplab_resnet18"},
           "data": {"workers": 0, "datasets": [{"name": "cityscapes", "root": str(root), "crop": 48}]},
           "schedule": {"steps": 2}, "run": {"device": "cpu"}, "output": {"dir": str(out)}, **sections}
    path.write_text(yaml.safe_dump(raw))
    return path


def preflight_error(config: Path) -> str:
    """The one-line error of a config that fails before the first step (in this process: the CLI's exit code and
    format are checked once, below)."""
    with pytest.raises(HiersegError) as info:
        prepare(load_config(config), source=str(config))
    return str(info.value)


def test_validation_without_a_val_split_is_refused_before_the_first_step(synth_root, tmp_path):
    root = tmp_path / "cityscapes"
    shutil.copytree(synth_root / "cityscapes", root)
    shutil.rmtree(root / "leftImg8bit" / "val")
    shutil.rmtree(root / "gtFine" / "val")
    config = write_config(tmp_path / "c.yaml", root, tmp_path / "run", eval={"every": 2})
    result = run_cli("train", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {config}: eval.every: ") and result.stderr.count("\n") == 1
    assert "data.datasets.0 (cityscapes)" in result.stderr and "'val' split" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # nothing written
    # validating on another split that is there, or not validating, needs no val split
    for sections in ({"eval": {"every": 2, "split": "train"}}, {}):
        prepare(load_config(write_config(tmp_path / "ok.yaml", root, tmp_path / "run", **sections)))


@pytest.mark.parametrize(("best", "words"), [
    ("cityscapes/miou", ("'cityscapes/miou' is not a metric", "cityscapes/mIoU", "mean/mIoU")),
    ("mapillary/mIoU", ("'mapillary/mIoU' is not a metric",)),  # not a dataset of the run
    ("mean/category_mIoU", ("not a metric",)),  # a mean only of the names every dataset has
])
def test_an_unknown_best_metric_is_refused_before_the_first_step(synth_root, tmp_path, best, words):
    config = write_config(tmp_path / "c.yaml", synth_root / "cityscapes", tmp_path / "run",
                          eval={"every": 2, "best": best})
    message = preflight_error(config)
    assert message.startswith(f"{config}: eval.best: ") and "\n" not in message
    assert all(w in message for w in words), message
    assert not (tmp_path / "run").exists()


def test_best_without_periodic_validation_is_a_config_error(synth_root, tmp_path):
    config = write_config(tmp_path / "c.yaml", synth_root / "cityscapes", tmp_path / "run",
                          eval={"best": "cityscapes/mIoU"})
    with pytest.raises(HiersegError, match=r"c\.yaml: eval\.best: .*set eval\.every"):
        load_config(config)


def test_metric_names_are_those_a_validation_reports(synth_root):
    names = validation.metric_names(("cityscapes", "ade20k"), "val")
    assert {"cityscapes/mIoU", "ade20k/mIoU", "mean/mIoU", "mean/pixel_acc", "cityscapes/category_mIoU"} <= set(names)
    assert "mean/category_mIoU" not in names and "ade20k/category_mIoU" not in names  # ADE20K has no categories
    model = Tiny(DATASETS)
    per_dataset = {d: validation.validate(model, d, synth_root / d, "val", make_config(
        synth_root, Path("unused"), DATASETS, eval={"every": 1, "limit": 1}).eval, "cpu")[0] for d in DATASETS}
    assert set(validation.combine(per_dataset)) <= set(names)
