"""Checkpoints whose weights no longer fit the model as built now are refused in one line naming the file and the
first tensor that differs (a DSSPN checkpoint from before self outputs, for instance)."""

from __future__ import annotations

import pytest
import torch

from hierseg.engine.checkpoint import load_model, save_checkpoint
from hierseg.models import create_model
from hierseg.taxonomy.errors import HiersegError
from tests.taxonomy.toy import toy_taxonomy


def test_a_dsspn_checkpoint_without_self_outputs_is_a_one_line_error(tmp_path):
    torch.manual_seed(0)
    kwargs = {"m": 4, "m0": 8}
    tax = toy_taxonomy()
    model = create_model("dsspn_resnet18", taxonomy=tax, **kwargs)
    path = save_checkpoint(tmp_path / "model.pt", "dsspn_resnet18", kwargs, model, tax)
    assert load_model(path)[0].state_dict().keys() == model.state_dict().keys()

    # what hierseg 0.1 wrote: the same neurons, without the self output row of animal, vehicle and road
    payload = torch.load(path, weights_only=False)
    for neuron in model.graph.neurons:
        if neuron.has_self:
            for part in ("weight", "bias"):
                key = f"head.neurons.{neuron.index}.predict.{part}"
                payload["state_dict"][key] = payload["state_dict"][key][: len(neuron.children)]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    with pytest.raises(HiersegError) as info:
        load_model(old)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{old}: its weights do not fit")
    animal = model.graph.index["animal"]
    assert f"head.neurons.{animal}.predict.weight is (2, 4, 1, 1) in the file but (3, 4, 1, 1)" in message
    assert "6 shapes differ" in message and "self outputs" in message

    del payload["state_dict"]["transition.project.0.weight"]  # a missing tensor is named too
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if "predict" not in k}
    torch.save(payload, old)
    with pytest.raises(HiersegError, match=r"tensors of dsspn_resnet18 as built now are missing from the file"):
        load_model(old)
