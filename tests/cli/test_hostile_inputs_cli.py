"""Hostile but realistic inputs through the real entry point (issue 26's second probe), one fault class each: a
device that is not there, an image too large for Pillow or of 16 bits, a file name with a newline, a damaged
metrics record, a deeply nested tree, a 200 KiB label name, an oversized synth, a checkpoint without a digest (in
eval, predict and init.backbone_from) and a failed start that must not block the next run. Every one is one
``error:`` line and exit code 2, never a traceback; output folders with linked sub-folders are written through
real folders only."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from hierseg.data.synth import synthesize
from hierseg.engine.checkpoint import read_checkpoint, save_checkpoint
from hierseg.models import create_model
from tests.cli.test_os_faults_cli import in_process, one_error

KWARGS = {"datasets": ["cityscapes"], "aspp_channels": 8, "output_stride": 16}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    synthesize("cityscapes", tmp / "cityscapes", n=1, size=32)
    torch.manual_seed(0)
    model = create_model("deeplab_resnet18", **KWARGS)
    checkpoint = save_checkpoint(tmp / "model.pt", "deeplab_resnet18", KWARGS, model)
    payload = read_checkpoint(checkpoint)  # the same model in the pickle format of hierseg 0.2
    legacy = tmp / "legacy.pt"
    torch.save({"format": "hierseg-checkpoint/1", "model": payload["model"], "taxonomy": None,
                "state_dict": payload["state_dict"], "training": None}, legacy)
    images = tmp / "images"
    images.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(images / "a.png")
    return {"tmp": tmp, "checkpoint": checkpoint, "legacy": legacy, "images": images}


def png_header(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature and header of the given size (Pillow judges the size before decoding any pixel)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(("device", "fragment"), [("tpu", "--device tpu: not a device"),
                                                   ("cuda:7", "--device cuda:7: torch sees")])
def test_a_device_that_is_not_there(env, tmp_path, device, fragment):
    if torch.cuda.is_available() and device.startswith("cuda"):
        pytest.skip("a CUDA device is there")
    one_error(in_process("predict", "--checkpoint", str(env["checkpoint"]), "--device", device, str(env["images"]),
                         "--out", str(tmp_path / "p")), fragment)
    one_error(in_process("eval", "--checkpoint", str(env["checkpoint"]), "--dataset", "cityscapes", "--device", device,
                         str(env["tmp"] / "cityscapes")), fragment)
    assert not (tmp_path / "p").exists()


def test_images_too_large_or_of_16_bits(env, tmp_path):
    huge = png_header(tmp_path / "huge.png", 30000, 30000)
    one_error(in_process("predict", "--checkpoint", str(env["checkpoint"]), "--device", "cpu", str(huge), "--out",
                         str(tmp_path / "p")), "huge.png: image of 900 MP, more than the 179 MP Pillow decodes")
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(deep)
    one_error(in_process("predict", "--checkpoint", str(env["checkpoint"]), "--device", "cpu", str(deep), "--out",
                         str(tmp_path / "p")), "a 16-bit image (mode I;16)")


def test_a_newline_in_a_name_cannot_forge_error_lines(env, tmp_path):
    name = tmp_path / "m.pt\nerror: everything is fine"
    result = in_process("eval", "--checkpoint", str(name), "--dataset", "cityscapes", str(env["tmp"] / "cityscapes"))
    line = one_error(result, "m.pt\\nerror: everything is fine")
    assert result.stderr.count("error:") == 2 and line.startswith("error: ")  # the forged text stays on its line


def test_damaged_logs_trees_and_label_tables_are_one_line(env, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"stage": "main", "step": "three"}\n')
    one_error(in_process("plot", str(run)), "metrics.jsonl:1: not a metrics record (stage_index is missing)")
    tree = tmp_path / "tree.json"
    tree.write_text("[" * 100000 + "]" * 100000)
    one_error(in_process("taxonomy", "stats", str(tree)), "tree.json: not a valid taxonomy: nested too deeply")
    labels = tmp_path / "labels.csv"
    labels.write_text("id,name,synonyms,color,evaluated\n1," + "x" * (200 << 10) + ",,1;2;3,1\n")
    one_error(in_process("data", "check", str(env["tmp"] / "cityscapes"), "--dataset", "mine", "--labels",
                         str(labels)), "labels.csv:2: not a readable CSV row (field larger than field limit")


def test_an_oversized_synth_is_refused_before_any_work(tmp_path):
    result = in_process("data", "synth", "--dataset", "ade20k", "--out", str(tmp_path / "s"), "--size", "100000")
    assert result.returncode == 2 and "Traceback" not in result.stderr and not (tmp_path / "s").exists()


def test_a_checkpoint_without_a_digest_needs_the_flag(env, tmp_path):
    args = ["predict", "--checkpoint", str(env["legacy"]), "--device", "cpu", str(env["images"]), "--out",
            str(tmp_path / "p")]
    one_error(in_process(*args), "a checkpoint of hierseg 0.2 or earlier", "--trust-checkpoint")
    assert not (tmp_path / "p").exists()
    result = in_process(*args, "--trust-checkpoint")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p" / "labels" / "a.png").is_file()


def test_a_failed_start_does_not_block_the_next_run(env, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "deeplab_resnet18", "kwargs": {"aspp_channels": 8, "output_stride": 16}},
        "data": {"workers": 0, "datasets": [{"name": "cityscapes", "root": str(env["tmp"] / "cityscapes"),
                                             "crop": 32, "batch_size": 1}]},
        "schedule": {"steps": 1}, "init": {"backbone_from": str(env["legacy"])}, "run": {"device": "cpu"},
        "output": {"dir": str(tmp_path / "run"), "checkpoint_every": 0}}))
    one_error(in_process("train", "--config", str(config)), "--trust-checkpoint")  # fails after its logs were opened
    result = in_process("train", "--config", str(config), "--trust-checkpoint")
    assert result.returncode == 0, result.stderr
    assert read_checkpoint(tmp_path / "run" / "model.pt")["digest"].startswith("sha256:")  # written in the new format
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["step"] == 1


def test_outputs_go_through_real_folders_only(env, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "labels").symlink_to(outside)
    one_error(in_process("predict", "--checkpoint", str(env["checkpoint"]), "--device", "cpu", str(env["images"]),
                         "--out", str(out)), "labels: is a symbolic link inside the output folder")
    assert not any(outside.iterdir())
