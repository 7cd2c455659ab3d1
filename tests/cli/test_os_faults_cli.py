"""Ordinary faults as a user meets them, through the real console entry point: every one is a single
``error: PATH: cause`` line and exit code 2, never a traceback; a FIFO where a file belongs never blocks (every
run has a deadline, so a hang fails the test); model keywords and config fields are checked with their ranges;
eval and predict on a dataset the checkpoint never trained on say so in one warning line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hierseg.data.synth import synthesize
from hierseg.engine.checkpoint import save_checkpoint
from hierseg.models import create_model
from hierseg.taxonomy.specs import SPEC_DIR

DEADLINE = 120
LATIN1 = "caf\xe9".encode("latin-1")
DEEPLAB = {"datasets": ["cityscapes"], "aspp_channels": 16, "output_stride": 16}


def hierseg(*args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    """A separate process with a deadline: a blocked reader raises TimeoutExpired, which fails the test."""
    return subprocess.run([sys.executable, "-m", "hierseg.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The same entry point, ``hierseg.cli.main.main``, run in this process (no interpreter start or torch import
    per case); for faults that cannot hang. The signal handler and warning format it installs are put back."""
    import contextlib
    import io
    import signal
    import warnings
    from unittest import mock

    from hierseg.cli import main as cli

    out, err = io.StringIO(), io.StringIO()
    handler, formatter, code = signal.getsignal(signal.SIGTERM), warnings.formatwarning, 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                mock.patch.object(sys, "argv", ["hierseg", *args]):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        signal.signal(signal.SIGTERM, handler)
        warnings.formatwarning = formatter
    return subprocess.CompletedProcess(["hierseg", *args], code, out.getvalue(), err.getvalue())


def one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    synthesize("cityscapes", tmp / "cityscapes", n=2, size=64)
    synthesize("mapillary", tmp / "mapillary", n=2, size=64)
    trained = {"config": {"data": {"datasets": [{"name": "cityscapes", "root": "x"}]}}, "stage": "main", "done": True}
    deeplab = save_checkpoint(tmp / "deeplab.pt", "deeplab_resnet18", DEEPLAB, create_model("deeplab_resnet18", **DEEPLAB),
                              training=trained)
    dsspn_kwargs = {"m": 8, "m0": 16, "output_stride": 16}
    from hierseg.taxonomy.tree import Taxonomy

    taxonomy = Taxonomy.load()
    dsspn = save_checkpoint(tmp / "dsspn.pt", "dsspn_resnet18", dsspn_kwargs,
                            create_model("dsspn_resnet18", taxonomy=taxonomy, **dsspn_kwargs), taxonomy, trained)
    run = tmp / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"stage": "main", "stage_index": 0, "step": 1, "global_step": 1, "epoch": 0, '
                                       '"loss": 1.0, "datasets": {"cityscapes": 1.0}, "terms": {}, "lr_head": 0.1, '
                                       '"lr_backbone": 0.01, "images": 2, "images_per_s": 1.0, "time": 0}\n')
    a_file = tmp / "a_file"
    a_file.write_text("x")
    return {"tmp": tmp, "deeplab": deeplab, "dsspn": dsspn, "run": run, "a_file": a_file}


def file_commands(env: dict, out: Path) -> dict[str, list[str]]:
    """Commands that write one file at ``out``."""
    return {
        "labels export": ["labels", "export", "--dataset", "cityscapes", "--out", str(out.with_suffix(".csv"))],
        "taxonomy export": ["taxonomy", "export", "--out", str(out.with_suffix(".json"))],
        "taxonomy draw": ["taxonomy", "draw", "--dataset", "cityscapes", "--out", str(out.with_suffix(".svg"))],
        "plot": ["plot", str(env["run"]), "--out", str(out.with_suffix(".png"))],
        "eval": ["eval", "--checkpoint", str(env["deeplab"]), "--dataset", "cityscapes",
                 str(env["tmp"] / "cityscapes"), "--device", "cpu", "--out", str(out.with_suffix(".json"))],
    }


def folder_commands(env: dict, out: Path) -> dict[str, list[str]]:
    """Commands that write a folder at ``out``."""
    config = env["tmp"] / f"train_{abs(hash(str(out)))}.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "deeplab_resnet18", "kwargs": {"output_stride": 16}},
        "data": {"workers": 0, "datasets": [{"name": "cityscapes", "root": str(env["tmp"] / "cityscapes"),
                                             "crop": 64, "batch_size": 2}]},
        "schedule": {"steps": 1}, "run": {"device": "cpu"}, "output": {"dir": str(out)}}))
    return {
        "data synth": ["data", "synth", "--dataset", "ade20k", "--n", "1", "--size", "32", "--out", str(out)],
        "labels remap": ["labels", "remap", "--from", "cityscapes", "--to", "mapillary", "--split", "val",
                         str(env["tmp"] / "cityscapes"), str(out)],
        "predict": ["predict", "--checkpoint", str(env["deeplab"]), "--device", "cpu",
                    str(env["tmp"] / "cityscapes" / "leftImg8bit" / "val"), "--out", str(out)],
        "train": ["train", "--config", str(config)],
    }


@pytest.mark.parametrize("command", ["labels export", "taxonomy export", "taxonomy draw", "plot", "eval"])
def test_a_file_output_that_is_a_folder_or_lies_under_a_file(env, tmp_path, command):
    folder = tmp_path / {"taxonomy draw": "taken.svg", "plot": "taken.png"}.get(command, "taken.json")
    folder.mkdir()
    args = file_commands(env, folder)[command]
    args[-1] = str(folder)
    one_error(in_process(*args), f"{folder}: is a folder")
    args = file_commands(env, env["a_file"] / "x")[command]
    one_error(in_process(*args), f"{env['a_file']} is a file")


@pytest.mark.parametrize("command", ["data synth", "labels remap", "predict", "train"])
def test_a_folder_output_that_is_a_file_or_lies_under_one(env, command):
    for out in (env["a_file"], env["a_file"] / "x"):
        one_error(in_process(*folder_commands(env, out)[command]), f"{env['a_file']} is a file")
    assert env["a_file"].read_text() == "x"


@pytest.mark.parametrize("command", ["labels export", "plot", "data synth", "labels remap", "predict", "train"])
def test_read_only_and_full_file_systems(env, read_only_dir, full_dir, command):
    for where, cause in ((read_only_dir, "Read-only file system"), (full_dir, "No space left on device")):
        if command in ("data synth", "labels remap", "predict", "train"):
            args = folder_commands(env, where / "out")[command]
        else:
            args = file_commands(env, where / "out")[command]
        one_error(in_process(*args), str(where), cause)


def test_taxonomy_build_writes_tree_and_label_maps_as_one_unit(tmp_path, read_only_dir):
    out = tmp_path / "built" / "tree.json"
    one_error(in_process("taxonomy", "build", "--out", str(out), "--label-maps", str(read_only_dir / "maps")),
              "Read-only file system")
    assert not out.exists() and not list(tmp_path.rglob("*.tmp"))


def test_fifos_and_devices_where_a_file_belongs_never_block(env, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    kind = "is a FIFO, not a regular file"
    one_error(hierseg("taxonomy", "validate", str(fifo), "--no-wordnet"), f"{fifo}: {kind}")
    one_error(hierseg("taxonomy", "show", str(fifo)), f"{fifo}: {kind}")
    one_error(hierseg("taxonomy", "stats", "/dev/zero"), "/dev/zero: is a character device")
    one_error(hierseg("train", "--config", str(fifo)), f"{fifo}: {kind}")
    one_error(hierseg("data", "check", str(env["tmp"] / "cityscapes"), "--dataset", "mine", "--labels", str(fifo)),
              f"{fifo}: {kind}")
    one_error(hierseg("eval", "--checkpoint", str(fifo), "--dataset", "cityscapes", str(env["tmp"] / "cityscapes")),
              f"{fifo}: {kind}")
    labels = tmp_path / "labels"
    shutil.copytree(env["tmp"] / "cityscapes" / "gtFine", labels)
    os.mkfifo(labels / "val" / "zz.png")
    # listing a folder skips what is not a regular file, so the FIFO is not read at all
    result = hierseg("labels", "remap", "--from", "cityscapes", "--to", "mapillary", "--glob", "*.png", str(labels),
                     str(tmp_path / "o"))
    assert result.returncode == 0 and not (tmp_path / "o" / "val" / "zz.png").exists(), result.stderr
    assert hierseg("labels", "stats", "--dataset", "cityscapes", "--glob", "*.png", str(labels)).returncode == 0
    images = tmp_path / "images"
    shutil.copytree(env["tmp"] / "mapillary", images)
    os.mkfifo(images / "validation" / "images" / "zz.jpg")  # an image the layout pairs with a label
    shutil.copy(next((images / "validation" / "v1.2" / "labels").glob("*.png")),
                images / "validation" / "v1.2" / "labels" / "zz.png")
    one_error(hierseg("data", "check", str(images), "--dataset", "mapillary", "--split", "validation"),
              f"zz.jpg: {kind} (image)")


def test_text_that_is_not_utf8_is_one_line_naming_the_file(env, tmp_path):
    tree = tmp_path / "tree.json"
    tree.write_bytes(b'{"concepts": [], "name": "' + LATIN1 + b'"}')
    one_error(hierseg("taxonomy", "validate", str(tree), "--no-wordnet"), f"{tree}:1: not UTF-8 text (byte 0xe9")
    config = tmp_path / "config.yaml"
    config.write_bytes(b"model:\n  name: " + LATIN1 + b"\n")
    one_error(hierseg("train", "--config", str(config)), f"{config}:2: not UTF-8 text")
    labels = tmp_path / "labels.csv"
    labels.write_bytes(b"id,name,synonyms,color,evaluated\n1," + LATIN1 + b",,1;2;3,1\n")
    one_error(hierseg("data", "check", str(env["tmp"] / "cityscapes"), "--dataset", "mine", "--labels", str(labels)),
              f"{labels}:2: not UTF-8 text")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(b'{"stage": "' + LATIN1 + b'"}\n')
    one_error(hierseg("plot", str(run)), f"{run / 'metrics.jsonl'}:1: not UTF-8 text")
    specs = tmp_path / "specs"
    shutil.copytree(SPEC_DIR, specs)
    with open(specs / "coco_stuff_hierarchy.csv", "ab") as handle:
        handle.write(LATIN1 + b",x\n")
    one_error(hierseg("taxonomy", "build", "--specs", str(specs), "--out", str(tmp_path / "t.json")),
              f"{specs / 'coco_stuff_hierarchy.csv'}:", "not UTF-8 text")


@pytest.mark.parametrize(("value", "reason"), [("-8", "must be an integer in [1, 4096], not -8"),
                                               ("0", "must be an integer in [1, 4096], not 0"),
                                               ("abc", "must be an integer, not 'abc'")])
def test_model_keywords_are_checked_with_their_range(env, tmp_path, value, reason):
    one_error(in_process("models", "info", "dsspn_resnet18", "--set", f"m={value}"),
              f"model 'dsspn_resnet18': m {reason}")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "dsspn_resnet18", "kwargs": {"m": yaml.safe_load(value)}},
        "data": {"workers": 0, "datasets": [{"name": "cityscapes", "root": str(env["tmp"] / "cityscapes")}]},
        "schedule": {"steps": 1}, "output": {"dir": str(tmp_path / "run")}}))
    assert one_error(in_process("train", "--config", str(config))) == f"error: {config}: model.kwargs.m: {reason}"
    assert not (tmp_path / "run").exists()


def test_config_fields_and_seeds_are_checked_with_their_range(env, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "deeplab_resnet18"},
        "data": {"workers": 0, "datasets": [{"name": "cityscapes", "root": str(env["tmp"] / "cityscapes")}]},
        "schedule": {"steps": 1}, "output": {"dir": str(tmp_path / "run")}}))
    for override, message in ((f"run.seed={2 ** 70}", "run.seed: Input should be less than or equal to 9223372036854775807"),
                              ("optim.lr_head=.inf", "optim.lr_head: Input should be a finite number"),
                              ("data.datasets.0.crop=100000", "data.datasets.0.crop: Input should be less than or equal "
                                                              "to 8192"),
                              ("data.on_error=maybe", "data.on_error: Input should be 'raise' or 'skip'")):
        assert one_error(in_process("train", "--config", str(config), "--set", override)) == \
            f"error: {config}: {message}"
    result = in_process("labels", "stats", "--dataset", "cityscapes", "--split", "val", "--seed", "-1",
                        str(env["tmp"] / "cityscapes"))
    assert result.returncode == 2 and "Invalid value for '--seed'" in result.stderr  # typer's usage error
    assert "Traceback" not in result.stderr


def test_eval_and_predict_outside_the_training_set_warn_once(env, tmp_path):
    result = hierseg("eval", "--checkpoint", str(env["dsspn"]), "--dataset", "mapillary", str(env["tmp"] / "mapillary"),
                     "--device", "cpu", "--format", "json", timeout=300)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {env['dsspn']} was trained on cityscapes, not mapillary: this is cross-dataset "
                        "evaluation"]
    result = hierseg("predict", "--checkpoint", str(env["dsspn"]), "--dataset", "mapillary", "--device", "cpu",
                     str(env["tmp"] / "mapillary" / "validation" / "images"), "--out", str(tmp_path / "p"), timeout=300)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {env['dsspn']} was trained on cityscapes, not mapillary: this is cross-dataset prediction"]
    result = hierseg("eval", "--checkpoint", str(env["dsspn"]), "--dataset", "cityscapes",
                     str(env["tmp"] / "cityscapes"), "--device", "cpu", "--format", "json", timeout=300)
    assert result.returncode == 0 and "warning:" not in result.stderr
