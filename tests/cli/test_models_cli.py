"""`hierseg models list|info`: every family is listed; info reports counts derived from the model itself."""

from __future__ import annotations

import json

from hierseg.models import list_models
from hierseg.models.dsspn import head_parameter_count
from hierseg.models.registry import build
from tests.conftest import run_cli


def test_list_names_every_family() -> None:
    result = run_cli("models", "list")
    assert result.returncode == 0, result.stderr
    rows = dict(line.split("\t") for line in result.stdout.splitlines())
    assert set(rows) == set(list_models())
    assert {"dsspn", "deeplab", "pdn", "dsnet", "spgnet"} <= set(rows.values())
    assert run_cli("models", "list", "dsspn_*").stdout.count("\n") == 3


def test_info_reports_dsspn_structure_for_a_dataset() -> None:
    result = run_cli("models", "info", "dsspn_resnet50", "--dataset", "mapillary", "--set", "m=32", "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    model = build("dsspn_resnet50", {"m": 32}, "meta")
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert info["neuron_params"] == head_parameter_count(model.graph, 256, 32)
    assert info["head_params"] == info["neuron_params"] + info["transition_params"]
    assert info["neurons"] == len(model.graph) and info["m"] == 32
    assert info["self_outputs"] == sum(n.has_self for n in model.graph.neurons)
    assert info["dataset_neurons"] == int(model.graph.mask("mapillary").active.sum())
    assert info["unpredictable_labels"] == []


def test_info_pdn_reports_the_table1_count() -> None:
    result = run_cli("models", "info", "pdn_resnet18", "--set", "num_classes=5", "--set", "neighbours=8",
                     "--set", "channels=64", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["diffusion_weights"] == 288 * 64


def test_bad_input_is_one_line_and_exit_2() -> None:
    for args, needle in ((("models", "info", "dsspn_resnet1O1"), "did you mean dsspn_resnet101"),
                         (("models", "info", "dsspn_resnet18", "--set", "mm=3"), "has no argument 'mm'"),
                         (("models", "info", "dsspn_resnet18", "--set", "m"), "expected key=value"),
                         (("models", "info", "dsspn_resnet18", "--dataset", "voc"), "'voc'")):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
