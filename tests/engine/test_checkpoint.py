"""Checkpoints: a SHA-256 of their tensors (a flipped byte is one error naming the file; files from before
checksums still load), and weights that no longer fit the model as built now are refused in one line naming the
file and the first tensor that differs (a DSSPN checkpoint from before self outputs, for instance)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.engine.checkpoint import FORMAT, load_model, read_checkpoint, save_checkpoint, tensor_checksum
from hierseg.models import create_model
from tests.taxonomy.toy import toy_taxonomy


def flip_bytes_in_largest_tensor(path: Path, count: int = 64) -> None:
    """XOR ``count`` bytes in the middle of the largest tensor's data record (the zip and the pickle stay valid)."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(handle.read(2), "little") for _ in range(2))
        start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        handle.seek(start)
        chunk = handle.read(count)
        handle.seek(start)
        handle.write(bytes(b ^ 0x40 for b in chunk))


@pytest.fixture
def saved(tmp_path) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Conv2d(64, 32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    training = {"optimizer": optimizer.state_dict(), "rng": [{"torch": torch.get_rng_state()}], "step": 1}
    return save_checkpoint(tmp_path / "model.pt", "toy", {"width": 64}, model, training=training)


def test_checkpoints_carry_a_checksum_of_every_tensor(saved):
    payload = read_checkpoint(saved)
    checksum = payload["checksum"]
    assert checksum["algorithm"] == "sha256" and len(checksum["digest"]) == 64
    # weights and buffers, a momentum buffer per parameter, the RNG state
    assert checksum["tensors"] == len(payload["state_dict"]) + 6 + 1 == 16
    assert tensor_checksum(payload) == checksum


def test_a_flipped_byte_in_the_weights_is_refused(saved):
    flip_bytes_in_largest_tensor(saved)
    payload = torch.load(saved, weights_only=False)  # torch itself does not notice
    assert payload["format"] == FORMAT
    with pytest.raises(HiersegError) as info:
        read_checkpoint(saved)
    assert str(info.value).startswith(f"{saved}: checksum mismatch: its tensors are not the ones that were saved")
    assert "\n" not in str(info.value)


def test_a_changed_tensor_count_or_unknown_algorithm_is_refused(saved, tmp_path):
    payload = torch.load(saved, weights_only=False)
    payload["state_dict"].popitem()
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    shorter = tmp_path / "shorter.pt"
    shorter.write_bytes(buffer.getvalue())
    with pytest.raises(HiersegError, match="shorter.pt: checksum mismatch"):
        read_checkpoint(shorter)
    payload["checksum"] = {"algorithm": "md5", "digest": "0"}
    torch.save(payload, shorter)
    with pytest.raises(HiersegError, match="shorter.pt: unknown checksum"):
        read_checkpoint(shorter)


def test_checkpoints_from_before_checksums_still_load(saved, tmp_path):
    payload = torch.load(saved, weights_only=False)
    del payload["checksum"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assert read_checkpoint(old)["model"]["name"] == "toy"


def test_a_dsspn_checkpoint_without_self_outputs_is_a_one_line_error(tmp_path):
    torch.manual_seed(0)
    kwargs = {"m": 4, "m0": 8}
    tax = toy_taxonomy()
    model = create_model("dsspn_resnet18", taxonomy=tax, **kwargs)
    path = save_checkpoint(tmp_path / "model.pt", "dsspn_resnet18", kwargs, model, tax)
    assert load_model(path)[0].state_dict().keys() == model.state_dict().keys()

    # what hierseg 0.1 wrote: the same neurons, without the self output row of animal, vehicle and road (and without
    # a checksum, which came later)
    payload = torch.load(path, weights_only=False)
    del payload["checksum"]
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
