"""Typed configs: every shipped config validates against the model zoo; bad values and overrides are one-line
errors naming the field; overrides are YAML values merged before validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hierseg.core.errors import HiersegError
from hierseg.engine.config import TrainConfig, apply_override, first_difference, load_config, parse_config
from hierseg.models import accepted_arguments, list_models

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def minimal() -> dict:
    return {"model": {"name": "deeplab_resnet18"},
            "data": {"datasets": [{"name": "cityscapes", "root": "data/cityscapes"},
                                  {"name": "mapillary", "root": "data/mapillary"}]},
            "schedule": {"epochs": 2}, "output": {"dir": "runs/x"}}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_validate_and_name_real_models(path: Path) -> None:
    config = load_config(path)
    assert config.model.name in list_models()
    assert set(config.model.kwargs) <= set(accepted_arguments(config.model.name))


def test_the_shipped_set_covers_the_paper_runs_and_the_demo() -> None:
    configs = {p.stem: load_config(p) for p in CONFIGS}
    universal = configs["dsspn_resnet101_universal"]
    assert universal.data.names == ["coco_stuff", "ade20k", "cityscapes", "mapillary"]
    assert universal.schedule.epochs == 60 and universal.finetune is not None
    assert (universal.finetune.epochs, universal.finetune.lr_factor) == (20, 0.1)  # DSSPN 4.3
    assert (universal.optim.lr_head, universal.optim.lr_backbone, universal.optim.power) == (0.003, 0.00003, 0.9)
    assert all(d.crop == 513 for d in universal.data.datasets)  # 4.1
    baselines = {c.model.name for c in configs.values()}
    assert {"deeplab_resnet101", "pdn_resnet101", "dsnet_resnet101", "spgnet_resnet101"} <= baselines
    demo = configs["demo"]
    assert demo.model.name == "dsspn_resnet18" and len(demo.data.datasets) == 4 and demo.run.device == "cpu"
    # a CPU-sized run: at most about 2,500 training crops (10 minutes on two cores), each at most 160 px
    assert demo.schedule.steps is not None and demo.schedule.steps * max(d.batch_size for d in demo.data.datasets) <= 2500
    assert all(d.crop <= 160 for d in demo.data.datasets)


def test_defaults_are_the_papers_optimiser() -> None:
    config = parse_config(minimal())
    o = config.optim
    assert (o.momentum, o.weight_decay, o.lr_head, o.lr_backbone, o.power) == (0.9, 0.0001, 0.003, 0.00003, 0.9)
    assert config.run.precision == "auto" and config.finetune is None


@pytest.mark.parametrize(("overrides", "expected"), [
    (["optim.lr_head=-1"], "optim.lr_head: Input should be greater than 0"),
    (["optim.lr_hed=0.1"], "optim.lr_hed: unknown field (allowed: lr_head, lr_backbone,"),
    (["schedule.steps=10"], "schedule.epochs: give exactly one of epochs or steps"),
    (["data.datasets.1.name=cityscapes"], "data.datasets.1.name: cityscapes is listed twice"),
    (["data.datasets.0.name=pascal"], "data.datasets.0.name: 'pascal' is not a built-in dataset (coco_stuff, ade20k,"),
    (["data.datasets.0.name=Pascal VOC"], "data.datasets.0.name: String should match pattern"),
    (["data.datasets.0.weight=2"], "data.datasets.1.weight: give every dataset a weight, or none"),
    (["data.datasets.1.batch_size=0"], "data.datasets.1.batch_size: Input should be greater than or equal to 1"),
    (["data.datasets.0.scale=[2, 0.5]"], "data.datasets.0.scale: needs 0 < low <= high"),
    (["run.precision=fp16"], "run.precision: Input should be 'auto', 'fp32' or 'bf16'"),
    (["finetune.epochs=20", "finetune.datasets=[ade20k]"], "finetune.datasets.0: ade20k is not one of data.datasets"),
    (["model.kwargs.backbone_weights=r.pth"], "model.kwargs.backbone_weights: set model.backbone_weights"),
    (["output.dir=null"], "output.dir: Input is not a valid path"),
    (["data.datasets.2.root=x"], "data.datasets.2.root: data.datasets is a list of 2"),
    (["optim.lr_head"], "expected KEY=VALUE"),
])
def test_bad_values_name_the_field(tmp_path: Path, overrides: list[str], expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    with pytest.raises(HiersegError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert expected in message and "\n" not in message
    if not expected.startswith("expected"):
        assert message.startswith(f"{path}: ")


def test_missing_sections_and_broken_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    raw = minimal()
    del raw["schedule"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(HiersegError, match=r"c\.yaml: schedule: required field is missing$"):
        load_config(path)
    path.write_text("model: {name: x\n")
    with pytest.raises(HiersegError, match=r"c\.yaml: line \d+: not valid YAML"):
        load_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(HiersegError, match="a config is a mapping of sections"):
        load_config(path)
    with pytest.raises(HiersegError, match="no such config file"):
        load_config(tmp_path / "none.yaml")


def test_overrides_are_yaml_values_merged_before_validation() -> None:
    raw = minimal()
    for item in ("optim.lr_head=1e-2", "run.compile=true", "data.datasets.0.root=/data/cs", "data.workers=0",
                 "finetune={epochs: 3}", "model.kwargs.aspp_rates=[6, 12]", "init.backbone_from=runs/a/model.pt"):
        apply_override(raw, item)
    config = parse_config(raw)
    assert config.optim.lr_head == 0.01 and config.run.compile is True and config.data.workers == 0
    assert config.data.datasets[0].root == Path("/data/cs") and config.data.datasets[1].root == Path("data/mapillary")
    assert config.finetune is not None and config.finetune.epochs == 3
    assert config.model.kwargs == {"aspp_rates": [6, 12]}
    assert config.init.backbone_from == Path("runs/a/model.pt")
    with pytest.raises(HiersegError, match=r"config: optim\.lr_head\.x: optim\.lr_head is a value, not a section"):
        apply_override(raw, "optim.lr_head.x=1")


def test_a_config_round_trips_through_its_json_dump() -> None:
    config = parse_config({**minimal(), "finetune": {"steps": 5}})
    again = TrainConfig.model_validate(config.model_dump(mode="json"))
    assert again == config
    assert first_difference(config.model_dump(mode="json"), again.model_dump(mode="json")) is None
    changed = again.model_dump(mode="json")
    changed["data"]["datasets"][1]["crop"] = 321
    assert first_difference(config.model_dump(mode="json"), changed) == "data.datasets.1.crop"
