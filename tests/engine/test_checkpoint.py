"""Checkpoints: loading runs no code (a pickle whose unpickling would write a marker file leaves no marker, trusted
or not), a digest over the whole content is checked before anything is used (a flipped weight byte, an edited tree
or model keyword, a renamed tensor are one error naming the file), a file without a digest needs trust, the training
state comes back exactly (tuples, integer keys, NumPy RNG arrays), and weights that no longer fit the model as built
now are refused in one line naming the file and the first tensor that differs."""

from __future__ import annotations

import json
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.engine.checkpoint import (
    FORMAT,
    encode_payload,
    load_backbone,
    load_model,
    read_checkpoint,
    rng_state,
    save_checkpoint,
)
from hierseg.models import create_model
from tests.taxonomy.toy import toy_taxonomy


def header_of(path: Path) -> tuple[int, dict]:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return size, json.loads(data[8:8 + size])


def rewrite_header(path: Path, change) -> None:
    """Apply ``change`` to the safetensors header (JSON) and write the file back with the same data section."""
    data = path.read_bytes()
    size, header = header_of(path)
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size:])


def flip_bytes_in_largest_tensor(path: Path, count: int = 64) -> None:
    """XOR ``count`` bytes in the middle of the largest tensor (the header and every other byte stay valid)."""
    size, header = header_of(path)
    start, end = max((v["data_offsets"] for k, v in header.items() if k != "__metadata__"), key=lambda o: o[1] - o[0])
    at = 8 + size + (start + end) // 2
    data = bytearray(path.read_bytes())
    data[at:at + count] = bytes(b ^ 0x40 for b in data[at:at + count])
    path.write_bytes(bytes(data))


@pytest.fixture
def saved(tmp_path) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Conv2d(64, 32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    training = {"optimizer": optimizer.state_dict(), "rng": [rng_state()], "step": 1}
    return save_checkpoint(tmp_path / "model.pt", "toy", {"width": 64}, model, toy_taxonomy(), training=training)


def test_the_training_state_comes_back_exactly(saved):
    payload = read_checkpoint(saved)
    assert payload["format"] == FORMAT and payload["digest"].startswith("sha256:")
    assert payload["model"] == {"name": "toy", "kwargs": {"width": 64}}
    assert payload["taxonomy"] == toy_taxonomy().artifact
    state = payload["training"]["optimizer"]["state"]
    assert sorted(state) == list(range(6)) and all(isinstance(k, int) for k in state)  # parameter indices, not "0"
    rng = payload["training"]["rng"][0]
    assert isinstance(rng["python"], tuple) and isinstance(rng["numpy"], tuple)
    assert rng["numpy"][1].dtype == np.uint32 and rng["numpy"][1].shape == (624,)
    # the generators continue exactly where the saved state left them
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    assert draws == (random.random(), np.random.rand(), torch.rand(1).item())
    assert payload["state_dict"]._metadata["1"]["version"] == nn.BatchNorm2d._version  # torch's module versions


def test_a_flipped_byte_in_the_weights_is_refused(saved):
    flip_bytes_in_largest_tensor(saved)
    from safetensors.torch import load_file

    assert load_file(saved)  # safetensors itself does not notice
    with pytest.raises(HiersegError) as info:
        read_checkpoint(saved)
    assert str(info.value).startswith(f"{saved}: digest mismatch: its content")
    assert "\n" not in str(info.value)


def test_an_edited_tree_keyword_or_tensor_name_is_refused(saved):
    def swap_two_labels(header):
        payload = json.loads(header["__metadata__"]["payload"])
        concepts = payload["taxonomy"]["concepts"]
        labelled = [c for c in concepts if c.get("labels")]
        labelled[0]["labels"], labelled[1]["labels"] = labelled[1]["labels"], labelled[0]["labels"]
        header["__metadata__"]["payload"] = json.dumps(payload)

    def widen(header):
        header["__metadata__"]["payload"] = header["__metadata__"]["payload"].replace('"width":64', '"width":65')

    def rename(header):
        names = sorted(k for k in header if k.startswith("/state_dict/0."))
        header[names[0]], header[names[1]] = header[names[1]], header[names[0]]

    original = saved.read_bytes()
    for change in (swap_two_labels, widen, rename):
        saved.write_bytes(original)
        rewrite_header(saved, change)
        with pytest.raises(HiersegError, match=f"^{saved}: digest mismatch"):
            read_checkpoint(saved)


def test_a_file_without_a_digest_needs_trust(saved, tmp_path):
    rewrite_header(saved, lambda header: header["__metadata__"].pop("digest"))
    with pytest.raises(HiersegError, match=f"^{saved}: has no digest.*--trust-checkpoint"):
        read_checkpoint(saved)
    assert read_checkpoint(saved, trust=True)["model"]["name"] == "toy"
    rewrite_header(saved, lambda header: header["__metadata__"].update(digest="md5:0"))
    with pytest.raises(HiersegError, match="unknown digest 'md5:0'"):
        read_checkpoint(saved, trust=True)  # trust covers a missing digest, never a wrong one


def test_a_header_that_lies_about_its_tensors_is_one_line(saved):
    def out_of_range(header):
        name = next(k for k in header if k != "__metadata__")
        header[name]["data_offsets"] = [0, 1 << 40]

    rewrite_header(saved, out_of_range)
    with pytest.raises(HiersegError, match="not a readable hierseg checkpoint .*is not where its header says"):
        read_checkpoint(saved)
    saved.write_bytes(b"\xff" * 64)
    with pytest.raises(HiersegError, match="not a readable hierseg checkpoint"):
        read_checkpoint(saved)


class WritesMarker:
    """Unpickling this calls ``Path.touch(marker)``: what a malicious checkpoint would do with ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("trust", [False, True])
def test_a_malicious_pickle_runs_no_code(tmp_path, trust):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "hierseg-checkpoint/1", "model": {"name": "toy", "kwargs": {}}, "state_dict": {},
                "training": {"x": WritesMarker(marker)}}, evil)
    with zipfile.ZipFile(evil) as archive:  # the file really would run it under a plain unpickler
        assert any(b"touch" in archive.read(n) for n in archive.namelist() if n.endswith(".pkl"))
    with pytest.raises(HiersegError) as info:
        read_checkpoint(evil, trust=trust)
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message
    if trust:  # torch's weights-only unpickler names what it refused
        assert ", which no checkpoint needs; refused without running it" in message, message
    else:
        assert "0.2 or earlier" in message and "--trust" in message
    model = nn.Linear(2, 2)
    with pytest.raises(HiersegError):
        load_backbone(model, evil, trust=trust)
    assert not marker.exists()
    pickle.loads(pickle.dumps(WritesMarker(marker)))  # the marker mechanism itself works
    assert marker.exists()


def test_old_pickle_checkpoints_load_when_trusted_without_running_code(saved, tmp_path):
    new = read_checkpoint(saved)
    old = tmp_path / "old.pt"
    torch.save({"format": "hierseg-checkpoint/1", "model": new["model"], "taxonomy": new["taxonomy"],
                "state_dict": new["state_dict"], "training": new["training"], "checksum": {"algorithm": "sha256"}},
               old)
    with pytest.raises(HiersegError, match=f"^{old}: a checkpoint of hierseg 0.2 or earlier"):
        read_checkpoint(old)
    payload = read_checkpoint(old, trust=True)
    assert payload["format"] == "hierseg-checkpoint/1" and payload["digest"] is None
    assert payload["training"]["rng"][0]["numpy"][1].dtype == np.uint32  # NumPy arrays through the allow-list
    assert all(torch.equal(payload["state_dict"][k], v) for k, v in new["state_dict"].items())


def test_a_dsspn_checkpoint_without_self_outputs_is_a_one_line_error(tmp_path):
    torch.manual_seed(0)
    kwargs = {"m": 4, "m0": 8}
    tax = toy_taxonomy()
    model = create_model("dsspn_resnet18", taxonomy=tax, **kwargs)
    path = save_checkpoint(tmp_path / "model.pt", "dsspn_resnet18", kwargs, model, tax)
    assert load_model(path)[0].state_dict().keys() == model.state_dict().keys()

    # what hierseg 0.1 wrote: the same neurons, without the self output row of animal, vehicle and road
    payload = read_checkpoint(path)
    for neuron in model.graph.neurons:
        if neuron.has_self:
            for part in ("weight", "bias"):
                key = f"head.neurons.{neuron.index}.predict.{part}"
                payload["state_dict"][key] = payload["state_dict"][key][: len(neuron.children)]
    old = tmp_path / "old.pt"
    old.write_bytes(encode_payload(payload))
    with pytest.raises(HiersegError) as info:
        load_model(old)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{old}: its weights do not fit")
    animal = model.graph.index["animal"]
    assert f"head.neurons.{animal}.predict.weight is (2, 4, 1, 1) in the file but (3, 4, 1, 1)" in message
    assert "6 shapes differ" in message and "self outputs" in message

    del payload["state_dict"]["transition.project.0.weight"]  # a missing tensor is named too
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if "predict" not in k}
    old.write_bytes(encode_payload(payload))
    with pytest.raises(HiersegError, match=r"tensors of dsspn_resnet18 as built now are missing from the file"):
        load_model(old)


def test_a_dsspn_checkpoint_keeps_the_classifier_it_was_trained_with(tmp_path):
    """softmax became DSSPN's default (issue 24): files name their classifier; one that does not is sigmoid."""
    torch.manual_seed(0)
    tax = toy_taxonomy()
    kwargs = {"m": 4, "m0": 8, "inference": "path"}  # the path rule adds scores, so the classifier shows in labels
    model = create_model("dsspn_resnet18", taxonomy=tax, **kwargs).eval()
    assert model.head.classifier == "softmax"
    path = save_checkpoint(tmp_path / "model.pt", "dsspn_resnet18", kwargs, model, tax)
    assert read_checkpoint(path)["model"]["kwargs"]["classifier"] == "softmax"
    assert load_model(path)[0].head.classifier == "softmax"

    sigmoid = create_model("dsspn_resnet18", taxonomy=tax, classifier="sigmoid", **kwargs).eval()
    payload = read_checkpoint(save_checkpoint(tmp_path / "s.pt", "dsspn_resnet18", kwargs, sigmoid, tax))
    del payload["model"]["kwargs"]["classifier"]  # as hierseg 0.2 wrote it
    old = tmp_path / "old.pt"
    old.write_bytes(encode_payload(payload))
    loaded = load_model(old)[0].eval()
    assert loaded.head.classifier == "sigmoid"
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.predict(image), sigmoid.predict(image))
