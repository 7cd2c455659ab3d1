"""The training loop on tiny models and synthetic data: schedule, logs, checkpoints, exact resume after SIGTERM,
fine-tuning stages, backbone initialisation, and the non-finite loss stop."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.data.synth import synthesize
from hierseg.engine.checkpoint import read_checkpoint
from hierseg.engine.config import TrainConfig, parse_config
from hierseg.engine.logs import read_metrics
from hierseg.engine.preflight import prepare
from hierseg.engine.train import Interrupted, train
from hierseg.models.base import FlatSegmenter
from hierseg.models.outputs import make_outputs
from hierseg.taxonomy.tree import Taxonomy

DATASETS = ("cityscapes", "ade20k")
TREE = Taxonomy.load()


class Tiny(FlatSegmenter):
    """A two-layer flat model on one dataset's labels (no batch norm, so runs compare exactly)."""

    def __init__(self, datasets: tuple[str, ...] = ("cityscapes",), width: int = 8) -> None:
        super().__init__(make_outputs(datasets=datasets, taxonomy=TREE))
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, stride=4, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, self.outputs.num_outputs, 1)

    def scores(self, image: torch.Tensor) -> list[tuple[str, torch.Tensor, float]]:
        return [("main", self.head(self.backbone(image)), 1.0)]


class TwoHeads(nn.Module):
    """A universal stand-in: one head per dataset, so each batch leaves the other heads unused (as DSSPN's
    sub-graphs do), with dropout so that resuming must restore the RNG."""

    def __init__(self, datasets: tuple[str, ...] = DATASETS, width: int = 8) -> None:
        super().__init__()
        self.outputs = {d: make_outputs(datasets=[d], taxonomy=TREE) for d in datasets}
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, stride=4, padding=1), nn.ReLU(), nn.Dropout2d(0.1))
        self.heads = nn.ModuleDict({d: nn.Conv2d(width, o.num_outputs, 1) for d, o in self.outputs.items()})

    def forward(self, image: torch.Tensor, label: torch.Tensor | None = None,
                dataset: str | None = None) -> dict[str, torch.Tensor]:
        logits = self.heads[dataset](self.backbone(image))
        loss = self.outputs[dataset].loss(logits, label, dataset)
        return {"loss": loss, "loss_main": loss}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), "head": list(self.heads.parameters())}


def write_synth(root: Path) -> Path:
    """Eight training images of 64x64 per dataset."""
    for name in DATASETS:
        synthesize(name, root / name, n=8, size=64, seed=0)
    return root


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return write_synth(tmp_path_factory.mktemp("synth"))


def make_config(root: Path, out: Path, datasets: tuple[str, ...] = ("cityscapes",),
                batch_sizes: dict[str, int] | None = None, **sections: Any) -> TrainConfig:
    raw: dict[str, Any] = {
        "model": {"name": "tiny"},
        "data": {"workers": 0, "datasets": [{"name": d, "root": str(root / d), "crop": 48,
                                             "batch_size": (batch_sizes or {}).get(d, 2)} for d in datasets]},
        "schedule": {"steps": 8},
        "optim": {"lr_head": 0.05, "lr_backbone": 0.01},
        "run": {"device": "cpu"},
        "output": {"dir": str(out), "log_every": 100, "checkpoint_every": 0},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return parse_config(raw)


def losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir)]


def test_single_dataset_run_logs_every_step_with_the_poly_schedule(synth_root, tmp_path):
    config = make_config(synth_root, tmp_path / "run", schedule={"steps": 12}, optim={"lr_head": 0.2})
    outputs = train(config, model_fn=lambda **kw: Tiny())
    assert outputs == {"main": tmp_path / "run" / "model.pt"}
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 13))
    for r in records:  # DSSPN 4.1: poly, power 0.9, two rates
        factor = (1 - (r["step"] - 1) / 12) ** 0.9
        assert r["lr_head"] == pytest.approx(0.2 * factor) and r["lr_backbone"] == pytest.approx(0.01 * factor)
        assert set(r["datasets"]) == {"cityscapes"} and r["images"] == 2
    first, last = losses(tmp_path / "run")[:3], losses(tmp_path / "run")[-3:]
    assert sum(last) < sum(first)
    csv_rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(csv_rows) == 13 and csv_rows[0].startswith("stage,step,global_step")
    payload = read_checkpoint(outputs["main"])
    assert payload["model"]["name"] == "tiny" and payload["training"]["done"]
    model = Tiny()
    model.load_state_dict(payload["state_dict"])  # a loadable model, not a DDP or compiled wrapper's keys
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_resume_after_sigterm_gives_the_same_losses(synth_root, tmp_path):
    steps = 10  # 4 + 2 steps per epoch here (batches of 2 and 3), so the resumed run also crosses an epoch boundary
    sizes = {"cityscapes": 2, "ade20k": 3}  # per-dataset batch sizes (DSSPN 4.1 uses 4 and 6)
    straight = make_config(synth_root, tmp_path / "straight", DATASETS, sizes, schedule={"steps": steps})
    train(straight, model_fn=lambda **kw: TwoHeads())
    records = read_metrics(tmp_path / "straight")
    assert all(r["images"] == sizes[next(iter(r["datasets"]))] for r in records)
    assert [next(iter(r["datasets"])) for r in records[:6]].count("ade20k") == 2  # every sample once per epoch

    stopped = make_config(synth_root, tmp_path / "stopped", DATASETS, sizes, schedule={"steps": steps})

    def stop_at_4(record: dict[str, Any]) -> None:
        if record["step"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # the real handler: the run stops after the next step

    with pytest.raises(Interrupted) as info:
        train(stopped, model_fn=lambda **kw: TwoHeads(), on_step=stop_at_4)
    k = info.value.step
    assert 4 <= k < steps and info.value.exit_code == 143
    assert read_checkpoint(info.value.checkpoint)["training"]["step"] == k
    assert len(losses(tmp_path / "stopped")) == k
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are put back

    train(stopped, resume=True, model_fn=lambda **kw: TwoHeads())
    expected, got = losses(tmp_path / "straight"), losses(tmp_path / "stopped")
    assert len(got) == steps
    assert got[k:] == pytest.approx(expected[k:], abs=1e-6, rel=0)
    assert [r["datasets"].keys() for r in read_metrics(tmp_path / "stopped")] == \
        [r["datasets"].keys() for r in read_metrics(tmp_path / "straight")]


def test_a_run_folder_is_never_reused_silently(synth_root, tmp_path):
    config = make_config(synth_root, tmp_path / "run", schedule={"steps": 2})
    train(config, model_fn=lambda **kw: Tiny())
    with pytest.raises(HiersegError, match="already holds a run.*--resume"):
        train(config, model_fn=lambda **kw: Tiny())
    changed = make_config(synth_root, tmp_path / "run", schedule={"steps": 2}, optim={"lr_head": 0.5})
    with pytest.raises(HiersegError, match=r"optim\.lr_head: differs from the run being resumed"):
        train(changed, resume=True, model_fn=lambda **kw: Tiny())
    with pytest.raises(HiersegError, match="no checkpoint to resume"):
        train(make_config(synth_root, tmp_path / "other"), resume=True, model_fn=lambda **kw: Tiny())


def test_joint_training_then_one_finetuned_checkpoint_per_dataset(synth_root, tmp_path):
    config = make_config(synth_root, tmp_path / "run", DATASETS, schedule={"steps": 6},
                         finetune={"steps": 3, "lr_factor": 0.1})
    outputs = train(config, model_fn=lambda **kw: TwoHeads())
    assert outputs == {"main": tmp_path / "run" / "model.pt",
                       "finetune-cityscapes": tmp_path / "run" / "finetune" / "cityscapes.pt",
                       "finetune-ade20k": tmp_path / "run" / "finetune" / "ade20k.pt"}
    records = read_metrics(tmp_path / "run")
    assert [r["stage"] for r in records] == ["main"] * 6 + ["finetune-cityscapes"] * 3 + ["finetune-ade20k"] * 3
    assert [r["global_step"] for r in records] == list(range(1, 13))
    assert {d for r in records[:6] for d in r["datasets"]} == set(DATASETS)  # batches of both datasets
    for r in records[6:]:
        assert list(r["datasets"]) == [r["stage"].removeprefix("finetune-")]
    assert records[6]["lr_head"] == pytest.approx(0.1 * 0.05) and records[6]["lr_backbone"] == pytest.approx(0.001)
    joint = read_checkpoint(outputs["main"])["state_dict"]
    city = read_checkpoint(outputs["finetune-cityscapes"])["state_dict"]
    assert not torch.equal(joint["heads.cityscapes.weight"], city["heads.cityscapes.weight"])
    # fine-tuning on Cityscapes starts from the joint model and never touches the ADE20K head
    assert torch.equal(joint["heads.ade20k.weight"], city["heads.ade20k.weight"])


def test_backbone_from_another_run_keeps_only_the_backbone(synth_root, tmp_path):
    first = make_config(synth_root, tmp_path / "first", schedule={"steps": 3})
    train(first, model_fn=lambda **kw: Tiny())
    source = read_checkpoint(tmp_path / "first" / "model.pt")["state_dict"]
    # ADE20K after Cityscapes (the paper's pairs share a ConvNet, not a head); lr_backbone 0 keeps it as copied
    second = make_config(synth_root, tmp_path / "second", ("ade20k",), schedule={"steps": 2},
                         optim={"lr_backbone": 0.0}, init={"backbone_from": str(tmp_path / "first" / "model.pt")})
    train(second, model_fn=lambda **kw: Tiny(("ade20k",)))
    result = read_checkpoint(tmp_path / "second" / "model.pt")["state_dict"]
    assert torch.equal(result["backbone.0.weight"], source["backbone.0.weight"])
    assert result["head.weight"].shape != source["head.weight"].shape

    wider = make_config(synth_root, tmp_path / "third", ("ade20k",),
                        init={"backbone_from": str(tmp_path / "first" / "model.pt")})
    with pytest.raises(HiersegError, match=r"model\.pt: backbone\.0\.weight is \(8, 3, 3, 3\) there but "
                                           r"\(16, 3, 3, 3\) here"):
        train(wider, model_fn=lambda **kw: Tiny(("ade20k",), width=16))


def test_a_non_finite_loss_stops_naming_step_dataset_and_images(synth_root, tmp_path):
    config = make_config(synth_root, tmp_path / "run", schedule={"steps": 20}, optim={"lr_head": 1e30})
    with pytest.raises(HiersegError) as info:
        train(config, model_fn=lambda **kw: Tiny())
    message = str(info.value)
    records = read_metrics(tmp_path / "run")
    assert f"main step {len(records) + 1} (epoch 0): loss is" in message
    assert "on a cityscapes batch of " in message and "_leftImg8bit.png" in message
    assert message.count("_leftImg8bit.png") == 2 and "\n" not in message
    assert not (tmp_path / "run" / "model.pt").exists()


def test_preflight_checks_the_model_and_paths_against_the_zoo(synth_root, tmp_path):
    config = make_config(synth_root, tmp_path / "run")

    def check(**sections: Any) -> str:
        raw = {**config.model_dump(mode="json"), "model": {"name": "deeplab_resnet18"}}
        for key, value in sections.items():
            raw[key] = {**raw[key], **value}
        with pytest.raises(HiersegError) as info:
            prepare(parse_config(raw), source="c.yaml")
        return str(info.value)

    assert check(model={"name": "deeplab_resnet19"}).startswith(
        "c.yaml: model.name: unknown model 'deeplab_resnet19'; did you mean deeplab_resnet18")
    assert check(model={"name": "deeplab_resnet18", "kwargs": {"rates": [1]}}).startswith(
        "c.yaml: model.kwargs.rates: deeplab_resnet18 has no such argument; it accepts: num_classes, datasets,")
    assert check(model={"name": "deeplab_resnet18", "backbone_weights": str(tmp_path / "r18.pth")}) == \
        f"c.yaml: model.backbone_weights: {tmp_path / 'r18.pth'}: no such file (or name hub weights: timm/<name>, " \
        "hf-hub:<org>/<repo>)"
    assert check(init={"backbone_from": str(tmp_path / "a.pt")}) == \
        f"c.yaml: init.backbone_from: {tmp_path / 'a.pt'}: no such checkpoint"
    assert check(data={"datasets": [{"name": "cityscapes", "root": str(synth_root / "cityscapes"),
                                     "split": "extra"}]}).startswith(
        "c.yaml: data.datasets.0: cityscapes: no split 'extra'")
    prepared = prepare(parse_config({**config.model_dump(mode="json"), "model": {"name": "deeplab_resnet18"}}))
    assert prepared.model_kwargs == {"datasets": ["cityscapes"]}  # the label spaces come from the data section
    assert len(prepared.datasets["cityscapes"]) == 8
    assert not (tmp_path / "run").exists()  # nothing written before the run starts


def test_resume_inside_a_finetuning_stage(synth_root, tmp_path):
    def config(out: Path) -> TrainConfig:
        return make_config(synth_root, out, DATASETS, schedule={"steps": 4}, finetune={"steps": 3})

    train(config(tmp_path / "straight"), model_fn=lambda **kw: TwoHeads())

    def stop_in_finetuning(record: dict[str, Any]) -> None:
        if record["stage"] == "finetune-cityscapes" and record["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as info:
        train(config(tmp_path / "stopped"), model_fn=lambda **kw: TwoHeads(), on_step=stop_in_finetuning)
    assert (info.value.stage, info.value.step, info.value.exit_code) == ("finetune-cityscapes", 2, 130)
    assert (tmp_path / "stopped" / "model.pt").is_file() and not (tmp_path / "stopped" / "finetune").exists()
    outputs = train(config(tmp_path / "stopped"), resume=True, model_fn=lambda **kw: TwoHeads())
    assert list(outputs) == ["main", "finetune-cityscapes", "finetune-ade20k"]
    assert losses(tmp_path / "stopped") == pytest.approx(losses(tmp_path / "straight"), abs=1e-6, rel=0)
    for name in DATASETS:
        a = read_checkpoint(tmp_path / "straight" / "finetune" / f"{name}.pt")["state_dict"]
        b = read_checkpoint(tmp_path / "stopped" / "finetune" / f"{name}.pt")["state_dict"]
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_only_rank_0_judges_the_run_folder(synth_root, tmp_path, monkeypatch):
    """Another rank never writes the folder, and its rank 0 may be writing it already (a process group made before
    the run has no rendezvous in between): outputs there stop rank 0's run only."""
    config = make_config(synth_root, tmp_path / "run")
    (tmp_path / "run").mkdir()
    # rank 0's first record (an empty log alone is a failed start, which does not block a run: issue 26)
    (tmp_path / "run" / "metrics.jsonl").write_text('{"stage": "main", "step": 1}\n')
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    prepare(config, model_fn=lambda **kw: Tiny())
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(HiersegError, match="holds another run's outputs"):
        prepare(config, model_fn=lambda **kw: Tiny())
