"""Fault table, second probe (issue 26): untrusted checkpoints, links where outputs go, remap folders, broken trees,
unbounded readers, hostile YAML, memory, synthetic datasets, and the last tracebacks; one verdict per case.

A companion of ``fault_table.py`` (whose runner, set-up and models it reuses): point it at any installed ``hierseg``
and it runs every case as a script against it, each in its own process group with a deadline, and judges it:

- ``ok``: handled as promised (one ``error:`` line and exit 2 naming what is wrong, or exit 0 with the right result);
- ``code ran`` (a pickle's payload ran), ``wrote outside`` (a file outside the named output was written, truncated
  or deleted), ``data loss`` (an input was destroyed), ``hang``, ``traceback``, ``silent wrong`` (exit 0 with a wrong
  or unchecked result), ``unclear`` (an error that does not say what is wrong), ``memory`` (over the cap);
- ``n/a``: the version has no such option (``--trust-checkpoint``, ``synth --overwrite``).

    python bench/fault_table2.py --hierseg .venv/bin/hierseg --work /tmp/faults2 --json after.json [--only CLASS]
    python bench/fault_table2.py --compare before.json after.json     # the markdown table of bench/fault_table.md

Memory cases run under ``RLIMIT_AS`` = 8 GiB (``hierseg`` itself maps about 3.6 GiB at import) and report the peak
resident set size. Everything is written under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_table import DEEPLAB, Context, Outcome, fresh, run, setup, teardown  # noqa: E402
from fault_table import write_config as _write_config  # noqa: E402

CLASSES = ("checkpoint", "links", "remap", "tree", "readers", "yaml", "memory", "synth", "messages")
MEMORY_CAP = 8 << 30


def write_config(path: Path, data: Path, out: Path, model: dict, steps: int = 1, extra: dict | None = None) -> Path:
    """fault_table's training config, with ``extra`` sections added or updated."""
    path = _write_config(path, data, out, model, steps=steps)
    raw = yaml.safe_load(path.read_text())
    for key, value in (extra or {}).items():
        raw.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(raw))
    return path


def verdict(ctx: Context, outcome: Outcome, value: str, cls: str) -> None:
    outcome.fault = cls
    outcome.extra = "; ".join(p for p in (f"verdict: {value}", outcome.extra) if p)
    print(f"{'':38s} => {value}", flush=True)


def judge(outcome: Outcome, *fragments: str, ok_rc: int = 2) -> str:
    """``ok`` when the run ended as expected: exit ``ok_rc`` (2: exactly one ``error:`` line holding every fragment)."""
    if outcome.hang:
        return "hang"
    if outcome.traceback:
        return "traceback"
    if outcome.rc == ok_rc == 0:
        return "ok"
    if outcome.rc == 0:
        return "silent wrong"
    if outcome.rc == 2 and ok_rc == 0:
        return "unclear"  # refused what it should do, with a message that misleads
    if outcome.rc != ok_rc:
        return f"exit {outcome.rc}"
    if not outcome.line.startswith(("error:", "problem:")):  # data check lists problems, then exits 2
        return "unclear"
    return "ok" if all(f.lower() in outcome.line.lower() for f in fragments) else "unclear"


def case(ctx: Context, cls: str, name: str, args: list[str], *fragments: str, timeout: float = 120,
         ok_rc: int = 2, check=None, **kwargs) -> Outcome:
    """Run one case and judge it; ``check(outcome)`` may return a worse verdict (code ran, wrote outside...)."""
    outcome, out, err = run(ctx, name, cls, args, timeout=timeout, **kwargs)
    if err.count("\nerror:") + err.startswith("error:") > 1 and ok_rc == 2 and not outcome.traceback:
        value = "unclear"  # several error lines for one fault (or forged ones)
    else:
        value = judge(outcome, *fragments, ok_rc=ok_rc)
    if check is not None:
        value = check(outcome) or value
    if "no such option" in err.lower() or "no such option" in outcome.line.lower():
        value = "n/a"
    verdict(ctx, outcome, value, cls)
    return outcome


def flag_supported(ctx: Context, command: list[str], flag: str) -> bool:
    usage = subprocess.run([str(ctx.hierseg), *command, "--help"], capture_output=True, text=True).stdout
    return flag in usage


# ------------------------------------------------------------------------------------------- checkpoint helpers


class Touch:
    """Unpickling this runs ``os.system(touch MARKER)``: what a hostile checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(path: Path, marker: Path, base: Path) -> Path:
    """A checkpoint of the tested version's own format, wrapped in a pickle that runs code on load."""
    import torch

    payload = {"format": "hierseg-checkpoint/1", "model": {"name": "deeplab_resnet18", "kwargs": {}},
               "taxonomy": None, "state_dict": {}, "training": {"hook": Touch(marker)}}
    torch.save(payload, path)
    return path


def is_zip(path: Path) -> bool:
    return path.read_bytes()[:4] == b"PK\x03\x04"


def edit_payload(src: Path, dst: Path, change) -> None:
    """Apply ``change(payload_dict)`` to a checkpoint and write it back keeping its checksum/digest as it was.

    Old format (a torch pickle, loaded here with the unsafe loader: the file is our own): payload edited in Python.
    New format (safetensors): the JSON payload in the header edited, the data section and the digest kept."""
    import torch

    if is_zip(src):
        payload = torch.load(src, weights_only=False)
        change(payload)
        torch.save(payload, dst)
        return
    data = src.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    payload = json.loads(header["__metadata__"]["payload"])
    change(payload)
    header["__metadata__"]["payload"] = json.dumps(payload, separators=(",", ":"))
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    dst.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size:])


def drop_digest(src: Path, dst: Path) -> None:
    import torch

    if is_zip(src):
        payload = torch.load(src, weights_only=False)
        payload.pop("checksum", None)
        torch.save(payload, dst)
        return
    data = src.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header["__metadata__"].pop("digest", None)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    dst.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size:])


def flip_largest_tensor(path: Path) -> None:
    if is_zip(path):
        from fault_table import flip_tensor_bytes

        flip_tensor_bytes(path)
        return
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    start, end = max((v["data_offsets"] for k, v in header.items() if k != "__metadata__"), key=lambda o: o[1] - o[0])
    at = 8 + size + (start + end) // 2
    data[at:at + 64] = bytes(b ^ 0x40 for b in data[at:at + 64])
    path.write_bytes(bytes(data))


def checkpoint(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "checkpoint")
    city = str(p["data"] / "cityscapes")
    images = str(p["data"] / "cityscapes" / "leftImg8bit" / "val")
    trust = flag_supported(ctx, ["eval"], "--trust-checkpoint")

    def no_marker(marker: Path):
        return lambda _: "code ran" if marker.exists() else None

    marker = d / "ran_eval"
    evil = evil_checkpoint(d / "evil.pt", marker, p["deeplab"])
    case(ctx, "checkpoint", "hostile pickle: eval", ["eval", "--checkpoint", str(evil), "--dataset", "cityscapes", city],
         check=no_marker(marker))
    marker = d / "ran_predict"
    evil = evil_checkpoint(d / "evil2.pt", marker, p["deeplab"])
    case(ctx, "checkpoint", "hostile pickle: predict", ["predict", "--checkpoint", str(evil), images, "--out",
                                                        str(d / "pred")], check=no_marker(marker))
    if trust:
        marker = d / "ran_trusted"
        evil = evil_checkpoint(d / "evil3.pt", marker, p["deeplab"])
        case(ctx, "checkpoint", "hostile pickle: eval --trust-checkpoint",
             ["eval", "--checkpoint", str(evil), "--dataset", "cityscapes", city, "--trust-checkpoint"],
             check=no_marker(marker))
    marker = d / "ran_backbone"
    evil = evil_checkpoint(d / "evil4.pt", marker, p["deeplab"])
    cfg = write_config(d / "bb.yaml", p["data"], d / "run_bb", DEEPLAB, steps=1,
                       extra={"init": {"backbone_from": str(evil)}})
    case(ctx, "checkpoint", "hostile pickle: init.backbone_from", ["train", "--config", str(cfg)], timeout=180,
         check=no_marker(marker))
    marker = d / "ran_resume"
    run_dir = d / "run_resume"
    run_dir.mkdir()
    evil_checkpoint(run_dir / "last.pt", marker, p["deeplab"])
    cfg = write_config(d / "resume.yaml", p["data"], run_dir, DEEPLAB, steps=1)
    case(ctx, "checkpoint", "hostile pickle: train --resume", ["train", "--config", str(cfg), "--resume"], timeout=180,
         check=no_marker(marker))
    marker = d / "ran_weights"
    evil = evil_checkpoint(d / "weights.pth", marker, p["deeplab"])
    cfg = write_config(d / "w.yaml", p["data"], d / "run_w", {**DEEPLAB, "backbone_weights": str(evil)}, steps=1)
    case(ctx, "checkpoint", "hostile pickle: model.backbone_weights", ["train", "--config", str(cfg)], timeout=180,
         check=no_marker(marker))

    # integrity: edits that keep the saved checksum / digest
    def swap_labels(payload):
        concepts = payload["taxonomy"]["concepts"]
        a, b = [c for c in concepts if c.get("labels", {}).get("cityscapes")][:2]
        a["labels"]["cityscapes"], b["labels"]["cityscapes"] = b["labels"]["cityscapes"], a["labels"]["cityscapes"]

    edited = d / "swapped.pt"
    edit_payload(p["dsspn"], edited, swap_labels)
    case(ctx, "checkpoint", "embedded tree edited (2 labels swapped)",
         ["eval", "--checkpoint", str(edited), "--dataset", "cityscapes", city], "checkpoint", timeout=180)
    edited = d / "kwargs.pt"
    edit_payload(p["deeplab"], edited, lambda payload: payload["model"]["kwargs"].update(output_stride=8))
    case(ctx, "checkpoint", "model kwargs edited (output_stride 16->8)",
         ["eval", "--checkpoint", str(edited), "--dataset", "cityscapes", city], "checkpoint")
    edited = d / "training.pt"
    edit_payload(p["deeplab"], edited, lambda payload: payload["training"]["config"]["data"]["datasets"][0].update(
        name="mapillary"))
    case(ctx, "checkpoint", "training config edited (datasets)",
         ["eval", "--checkpoint", str(edited), "--dataset", "cityscapes", city], "checkpoint")
    no_digest = d / "nodigest.pt"
    drop_digest(p["deeplab"], no_digest)
    case(ctx, "checkpoint", "checksum/digest removed", ["eval", "--checkpoint", str(no_digest), "--dataset", "cityscapes",
                                                        city], "digest")
    if trust:
        case(ctx, "checkpoint", "digest removed, --trust-checkpoint",
             ["eval", "--checkpoint", str(no_digest), "--dataset", "cityscapes", city, "--trust-checkpoint"], ok_rc=0)
    flipped = d / "flipped.pt"
    shutil.copy(p["deeplab"], flipped)
    flip_largest_tensor(flipped)
    case(ctx, "checkpoint", "64 weight bytes flipped", ["eval", "--checkpoint", str(flipped), "--dataset", "cityscapes",
                                                       city], "mismatch")
    short = d / "truncated.pt"
    short.write_bytes(p["deeplab"].read_bytes()[: p["deeplab"].stat().st_size // 2])
    case(ctx, "checkpoint", "truncated checkpoint", ["eval", "--checkpoint", str(short), "--dataset", "cityscapes", city],
         "truncated.pt")
    junk = d / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    case(ctx, "checkpoint", "random bytes as checkpoint", ["eval", "--checkpoint", str(junk), "--dataset", "cityscapes",
                                                          city], "junk.pt")
    empty_zip = d / "zip.pt"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("x/data.pkl", b"garbage")
    case(ctx, "checkpoint", "zip without a pickle", ["eval", "--checkpoint", str(empty_zip), "--dataset", "cityscapes",
                                                    city], "zip.pt")
    # an old-format checkpoint (what hierseg 0.2 wrote): the before version reads it, the after one needs trust
    import torch

    old = d / "old.pt"
    if is_zip(p["deeplab"]):
        shutil.copy(p["deeplab"], old)
    else:
        payload = _read_new(p["deeplab"])
        torch.save({"format": "hierseg-checkpoint/1", **payload}, old)
    case(ctx, "checkpoint", "old-format checkpoint, eval", ["eval", "--checkpoint", str(old), "--dataset", "cityscapes",
                                                           city], ok_rc=0 if not trust else 2,
         check=None if not trust else (lambda o: None if "--trust-checkpoint" in o.line else "unclear"))
    if trust:
        case(ctx, "checkpoint", "old-format checkpoint, --trust-checkpoint",
             ["predict", "--checkpoint", str(old), images, "--out", str(d / "old_pred"), "--trust-checkpoint"], ok_rc=0)


def _read_new(path: Path) -> dict:
    """The payload of a new-format file, through the tested installation's own reader (run in its interpreter)."""
    import pickle

    code = ("import pickle, sys\nfrom hierseg.engine.checkpoint import read_checkpoint\n"
            "p = read_checkpoint(sys.argv[1])\n"
            "sys.stdout.buffer.write(pickle.dumps({k: p[k] for k in ('model', 'taxonomy', 'state_dict', 'training')}))")
    python = Path(os.environ.get("FAULT_PYTHON", sys.executable))
    out = subprocess.run([str(python), "-c", code, str(path)], capture_output=True, check=True).stdout
    return pickle.loads(out)


# ------------------------------------------------------------------------------------------------------ links


def links(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "links")
    victim = d / "victim.txt"
    outside = d / "outside"

    def reset() -> None:
        victim.write_text("precious\n")
        if outside.exists():
            shutil.rmtree(outside)
        outside.mkdir()

    def untouched(_=None):
        changed = victim.read_text() != "precious\n" or any(outside.iterdir())
        return "wrote outside" if changed else None

    def run_folder(name: str, link: str, to: Path, steps: int = 1, extra: dict | None = None) -> Path:
        run_dir = d / name
        run_dir.mkdir()
        (run_dir / link).symlink_to(to)
        return write_config(d / f"{name}.yaml", p["data"], run_dir, DEEPLAB, steps=steps, extra=extra)

    def either(outcome):  # a link replaced by a file (never written through), or refused: both keep the target
        if untouched() or outcome.traceback or outcome.hang:
            return untouched()
        return "ok" if outcome.rc == 0 or (outcome.rc == 2 and "link" in outcome.line) else None

    reset()
    cfg = run_folder("run_lock", ".hierseg.lock", victim)
    case(ctx, "links", "train: RUN/.hierseg.lock links outside", ["train", "--config", str(cfg)], "link", timeout=180,
         check=untouched)
    reset()
    cfg = run_folder("run_config", "config.yaml", victim)
    case(ctx, "links", "train: RUN/config.yaml links outside", ["train", "--config", str(cfg)], "link", timeout=180,
         check=either)
    for log in ("metrics.jsonl", "metrics.csv"):  # a finished run resumed: its logs are rewritten in place
        run_dir = d / f"run_{log.replace('.', '_')}"
        cfg = write_config(d / f"{log}.yaml", p["data"], run_dir, DEEPLAB, steps=1)
        run(ctx, "setup: train 1 step", "links", ["train", "--config", str(cfg)], timeout=180, record=False)
        reset()
        (run_dir / log).unlink()
        (run_dir / log).symlink_to(victim)
        case(ctx, "links", f"train --resume: RUN/{log} links outside", ["train", "--config", str(cfg), "--resume"],
             "link", timeout=180, check=untouched)
    reset()
    (outside / "keep.pt").write_text("keep")
    cfg = run_folder("run_finetune", "finetune", outside, extra={"data": {}})
    raw = yaml.safe_load(cfg.read_text())
    raw["model"] = {"name": "deeplab_resnet18", "kwargs": {"output_stride": 16, "datasets": ["cityscapes", "mapillary"]}}
    raw["data"]["datasets"].append({"name": "mapillary", "root": str(p["data"] / "mapillary"), "crop": 65,
                                    "batch_size": 2})
    raw["finetune"] = {"steps": 1}
    cfg.write_text(yaml.safe_dump(raw))
    (d / "run_finetune" / "model.pt").write_text("an earlier run's")  # so --overwrite has something to replace
    case(ctx, "links", "train --overwrite, 2 stages: RUN/finetune links outside",
         ["train", "--config", str(cfg), "--overwrite"], ok_rc=0, timeout=400,
         check=lambda _: None if sorted(f.name for f in outside.iterdir()) == ["keep.pt"] else "wrote outside")
    reset()
    (outside / "keep.pt").write_text("keep")
    run_dir = d / "run_overwrite"
    run_dir.mkdir()
    (run_dir / "model.pt").write_text("old")
    (run_dir / "finetune").symlink_to(outside)
    cfg = write_config(d / "ow.yaml", p["data"], run_dir, DEEPLAB, steps=1)
    case(ctx, "links", "train --overwrite: RUN/finetune links outside", ["train", "--config", str(cfg), "--overwrite"],
         ok_rc=0, timeout=180,
         check=lambda _: None if (outside / "keep.pt").exists() else "wrote outside")

    src = d / "labels"
    (src / "sub").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((8, 8), 7, np.uint8)).save(src / "sub" / f"{i}.png")
    for what in (".hierseg.lock", "sub", "sub/0.png"):
        reset()
        dst = d / f"dst_{what.replace('/', '_').strip('.')}"
        (dst / "sub").mkdir(parents=True) if what == "sub/0.png" else dst.mkdir()
        (dst / what).symlink_to(outside if what == "sub" else victim)
        case(ctx, "links", f"remap: DST/{what} links outside",
             ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "mapillary", str(src), str(dst)],
             *(() if what == "sub/0.png" else ("link",)), check=untouched)
    for what in ("labels", "overlays"):
        reset()
        out = d / f"pred_{what}"
        out.mkdir()
        (out / what).symlink_to(outside)
        case(ctx, "links", f"predict: OUT/{what} links outside",
             ["predict", "--checkpoint", str(p["deeplab"]), str(p["data"] / "cityscapes" / "leftImg8bit" / "val"),
              "--out", str(out)], "link", check=untouched)
    reset()
    out = d / "synth"
    out.mkdir()
    (out / "gtFine").symlink_to(outside)
    case(ctx, "links", "data synth: OUT/gtFine links outside",
         ["data", "synth", "--dataset", "cityscapes", "--out", str(out), "--n", "1", "--size", "32"], check=untouched)
    reset()
    maps = d / "maps"
    maps.mkdir()
    (maps / "cityscapes.csv").symlink_to(victim)
    case(ctx, "links", "taxonomy build: label map links outside",
         ["taxonomy", "build", "--out", str(d / "tree" / "t.json"), "--label-maps", str(maps)], "link", timeout=240,
         check=either)
    for name, args in (("labels export --out", ["labels", "export", "--dataset", "cityscapes", "--out"]),
                       ("eval --out", ["eval", "--checkpoint", str(p["deeplab"]), "--dataset", "cityscapes",
                                       str(p["data"] / "cityscapes"), "--out"])):
        reset()
        link = d / f"{name.split()[0]}_out.{'json' if 'eval' in name else 'csv'}"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(victim)
        case(ctx, "links", f"{name} is a link", [*args, str(link)], "link", check=either)


# ------------------------------------------------------------------------------------------------------ remap


def remap(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "remap2")

    def labels(folder: Path, n: int = 3) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 7 + i, np.uint8)).save(folder / f"{i}.png")

    args = ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to", "mapillary"]
    dst = d / "dst"
    labels(dst / "src")
    before = {f: (dst / "src" / f).read_bytes() for f in ("0.png", "1.png", "2.png")}

    def source_kept(_=None):
        return None if all((dst / "src" / f).read_bytes() == b for f, b in before.items()) else "data loss"

    case(ctx, "remap", "SRC inside DST", [*args, str(dst / "src"), str(dst)], "source", check=source_kept)
    case(ctx, "remap", "SRC inside DST, --overwrite", [*args, "--overwrite", str(dst / "src"), str(dst)], "source",
         check=source_kept)
    src, out = d / "src", d / "out"
    labels(src)
    run(ctx, "setup: remap", "remap", [*args, str(src), str(out)], record=False)
    good = (out / "1.png").read_bytes()
    with open(out / "1.png", "r+b") as handle:
        handle.truncate(20)
    case(ctx, "remap", "output truncated after it was written", [*args, str(src), str(out)], "1.png",
         check=lambda o: "silent wrong" if o.rc == 0 and (out / "1.png").read_bytes() != good else None)
    run(ctx, "setup: remap --overwrite", "remap", [*args, "--overwrite", str(src), str(out)], record=False)
    (out / "2.png").write_bytes((out / "0.png").read_bytes())  # another output's bytes: a swapped or edited file
    case(ctx, "remap", "output replaced by other bytes", [*args, str(src), str(out)], "2.png",
         check=lambda o: "silent wrong" if o.rc == 0 and (out / "2.png").read_bytes() == (out / "0.png").read_bytes()
         else None)
    manifest = out / "remap_manifest.json"
    for name, change in (("an entry is a string", lambda m: m["files"].__setitem__("0.png", "fine")),
                         ("an entry lacks its size", lambda m: m["files"]["0.png"].pop("size")),
                         ("files is a list", lambda m: m.__setitem__("files", [1, 2])),
                         ("started_ns is a string", lambda m: m.__setitem__("started_ns", "yesterday"))):
        shutil.rmtree(out)
        run(ctx, "setup: remap", "remap", [*args, str(src), str(out)], record=False)
        data = json.loads(manifest.read_text())
        change(data)
        manifest.write_text(json.dumps(data))
        case(ctx, "remap", f"manifest: {name}", [*args, str(src), str(out)], "manifest")
    manifest.write_text("[" * 100000 + "]" * 100000)
    case(ctx, "remap", "manifest nested 100000 deep", [*args, str(src), str(out)], "manifest")
    case(ctx, "remap", "DST inside SRC (first probe)", [*args, str(src), str(src / "x")], "inside")


# ------------------------------------------------------------------------------------------------------- tree


def tree(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "tree")
    shipped = json.loads(subprocess.run([str(ctx.python), "-c", "from hierseg.taxonomy.tree import DEFAULT_ARTIFACT;"
                                         "print(DEFAULT_ARTIFACT.read_text())"], capture_output=True, text=True,
                                        cwd=ctx.work).stdout)

    def variant(name: str, change) -> Path:
        artifact = json.loads(json.dumps(shipped))
        change(artifact)
        path = d / f"{name}.json"
        path.write_text(json.dumps(artifact))
        return path

    def by_id(artifact, cid):
        return next(c for c in artifact["concepts"] if c["id"] == cid)

    cycle = variant("cycle", lambda a: by_id(a, by_id(a, "road")["parent"]).__setitem__("parent", "road"))
    unknown = variant("unknown", lambda a: by_id(a, "road").__setitem__("parent", "no_such_concept"))
    commands = {"stats": ["taxonomy", "stats", "{t}"], "show": ["taxonomy", "show", "{t}"],
                "diff": ["taxonomy", "diff", "{t}"], "export": ["taxonomy", "export", "{t}"],
                "draw": ["taxonomy", "draw", "{t}", "--out", str(d / "x.svg")],
                "labels export": ["labels", "export", "--dataset", "cityscapes", "--taxonomy", "{t}"]}
    for fault, path, fragment in (("parent cycle", cycle, "cycle"), ("unknown parent", unknown, "parent")):
        for name, command in commands.items():
            case(ctx, "tree", f"{fault}: {name}", [a.replace("{t}", str(path)) for a in command], fragment,
                 timeout=30)
    two_roots = variant("two_roots", lambda a: by_id(a, "grass").update(parent=None))
    case(ctx, "tree", "two roots: stats", ["taxonomy", "stats", str(two_roots)], "root", timeout=30)
    int_root = variant("int_root", lambda a: a.__setitem__("root", 5))
    case(ctx, "tree", "root is a number: show", ["taxonomy", "show", str(int_root)], "root", timeout=30)
    depth = variant("depth", lambda a: by_id(a, "road").__setitem__("depth", 1))
    case(ctx, "tree", "wrong depth: stats", ["taxonomy", "stats", str(depth)], "depth", timeout=30)
    dup = variant("dup", lambda a: a["concepts"].append(dict(by_id(a, "grass"))))
    case(ctx, "tree", "a concept given twice: stats", ["taxonomy", "stats", str(dup)], "grass", timeout=30)
    name = variant("name", lambda a: by_id(a, "grass").__setitem__("name", {"en": "sky"}))
    case(ctx, "tree", "name not a string: show", ["taxonomy", "show", str(name)], "name", timeout=30)
    key = d / "dup_key.json"
    key.write_text(json.dumps(shipped)[:-1] + ', "root": "sky"}')
    case(ctx, "tree", "JSON key 'root' given twice: stats", ["taxonomy", "stats", str(key)], "root", timeout=30)


# ---------------------------------------------------------------------------------------------------- readers


def readers(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "readers")
    fifo = d / "pipe.csv"
    os.mkfifo(fifo)
    case(ctx, "readers", "FIFO as suggest --labels", ["taxonomy", "suggest", "--labels", str(fifo)], "FIFO", timeout=60)
    case(ctx, "readers", "FIFO as compare --mseg", ["taxonomy", "compare", "--mseg", str(fifo)], "FIFO", timeout=60)
    case(ctx, "readers", "/dev/zero as suggest --labels", ["taxonomy", "suggest", "--labels", "/dev/zero"], "device",
         timeout=60, limit_as=6 << 30)
    case(ctx, "readers", "/dev/zero as compare --mseg", ["taxonomy", "compare", "--mseg", "/dev/zero"], "device",
         timeout=60, limit_as=6 << 30)
    big = d / "big.json"
    with open(big, "wb") as handle:  # sparse: 2 GiB of nothing, read whole before
        handle.truncate(2 << 30)
    case(ctx, "readers", "2 GiB file as tree (6 GiB cap)", ["taxonomy", "stats", str(big)], "big.json", timeout=60,
         limit_as=6 << 30)
    specs = d / "specs"
    shutil.copytree(Path(subprocess.run([str(ctx.python), "-c", "from hierseg.taxonomy.specs import SPEC_DIR;"
                                         "print(SPEC_DIR)"], capture_output=True, text=True,
                                        cwd=ctx.work).stdout.strip()), specs)
    (specs / "coco_synsets.yaml").unlink()
    os.mkfifo(specs / "coco_synsets.yaml")
    case(ctx, "readers", "FIFO as coco_synsets.yaml (build --specs)",
         ["taxonomy", "build", "--specs", str(specs), "--out", str(d / "t.json")], "FIFO", timeout=60)
    case(ctx, "readers", "FIFO as --taxonomy (data synth)",
         ["data", "synth", "--dataset", "cityscapes", "--taxonomy", str(fifo), "--out", str(d / "s")], "FIFO",
         timeout=60)


# ------------------------------------------------------------------------------------------------------- yaml


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
# the same nine levels as one flow list (9**9 leaves when written out): a value an error message prints
BOMB_LIST = "[&a [x, x, x, x, x, x, x, x, x], " + ", ".join(
    f"&{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)) + "]"


def yaml_cases(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "yaml")
    base = write_config(d / "base.yaml", p["data"], d / "run", DEEPLAB, steps=1)
    text = base.read_text()

    def own_run(name: str, body: str) -> str:  # every case its own output.dir: none finds another's run
        return body.replace(str(d / "run"), str(d / f"run_{name}"))

    cfg = d / "bomb.yaml"
    raw = yaml.safe_load(text)
    raw["model"]["kwargs"]["num_classes"] = "BOMB"
    cfg.write_text(own_run("bomb", yaml.safe_dump(raw).replace("BOMB", BOMB_LIST)))
    case(ctx, "yaml", "alias bomb in model.kwargs (train)", ["train", "--config", str(cfg)], "alias", timeout=60,
         limit_as=6 << 30)
    case(ctx, "yaml", "alias bomb in --set", ["models", "info", "deeplab_resnet18", "--set",
                                             "num_classes=" + "{" + BOMB.replace("\n", ", ") + "}"], timeout=60,
         limit_as=6 << 30)
    cfg = d / "dup.yaml"
    cfg.write_text(own_run("dup", text) + "optim:\n  lr_head: 5.0\n")
    case(ctx, "yaml", "second optim: block (train)", ["train", "--config", str(cfg)], "optim", timeout=180,
         check=lambda o: "silent wrong" if o.rc == 0 else None)
    cfg = d / "python.yaml"
    cfg.write_text(own_run("python", text) + f"extra: !!python/object/apply:os.system ['touch {d / 'ran'}']\n")
    case(ctx, "yaml", "!!python/object/apply in a config", ["train", "--config", str(cfg)], "python", timeout=60,
         check=lambda _: "code ran" if (d / "ran").exists() else None)
    case(ctx, "yaml", "!!python/name in --set", ["models", "info", "deeplab_resnet18", "--set",
                                                "num_classes=!!python/name:os.getpid"], "python", timeout=60)
    cfg = d / "deep.yaml"
    cfg.write_text(text + "extra: " + "[" * 5000 + "]" * 5000 + "\n")
    case(ctx, "yaml", "config nested 5000 deep", ["train", "--config", str(cfg)], "deep", timeout=60)
    cfg = d / "digits.yaml"
    cfg.write_text(text.replace("steps: 1", "steps: " + "9" * 5000))
    case(ctx, "yaml", "5000-digit number in a config", ["train", "--config", str(cfg)], "digit", timeout=60)
    for field, value in (("schedule.steps", "true"), ("optim.lr_head", "true"), ("data.datasets.0.batch_size", "true")):
        case(ctx, "yaml", f"{field}: {value}", ["train", "--config", str(base), "--set", f"{field}={value}", "--set",
                                                f"output.dir={d / ('run_' + field)}"], field,
             timeout=180, check=lambda o: "silent wrong" if o.rc == 0 else None)
    spec_src = Path(subprocess.run([str(ctx.python), "-c", "from hierseg.taxonomy.specs import SPEC_DIR;"
                                    "print(SPEC_DIR)"], capture_output=True, text=True, cwd=ctx.work).stdout.strip())
    for name, change, fragment in (
            ("second root: in merge.yaml", lambda t: t.replace("root: entity", "root: entity\nroot: stuff", 1), "root"),
            ("root: 5 in merge.yaml", lambda t: t.replace("root: entity", "root: 5", 1), "root"),
            ("!!python tag in merge.yaml", lambda t: t.replace("root: entity", "root: !!python/object/apply:os.getpid []",
                                                               1), "python")):
        specs = d / f"specs_{abs(hash(name))}"
        shutil.copytree(spec_src, specs)
        (specs / "merge.yaml").write_text(change((specs / "merge.yaml").read_text()))
        case(ctx, "yaml", name, ["taxonomy", "build", "--specs", str(specs), "--out", str(specs / "t.json"), "--any-size"],
             fragment, timeout=240, limit_as=6 << 30)
    voc = (spec_src / "pascal_voc.yaml").read_text()
    for name, change, fragment in (
            ("!!python tag in a dataset spec",
             lambda t: t.replace("ignore: 255", "ignore: !!python/object/apply:os.getpid []"), "python"),
            ("dataset: twice in a spec", lambda t: t + "\ndataset: other\n", "twice")):
        spec = d / f"voc_{abs(hash(name))}.yaml"
        spec.write_text(change(voc).replace("table: pascal_voc2012.csv", f"table: {spec_src / 'pascal_voc2012.csv'}"))
        case(ctx, "yaml", name, ["taxonomy", "build", "--add", str(spec), "--out", str(d / "ext.json")], fragment,
             timeout=240)


# ----------------------------------------------------------------------------------------------------- memory


def peak_run(ctx: Context, name: str, args: list[str], cls: str = "memory", timeout: float = 600) -> tuple[Outcome, int]:
    """``run`` with ``RLIMIT_AS`` at :data:`MEMORY_CAP` and the child's peak RSS (``wait4``)."""
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    import tempfile

    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([str(ctx.hierseg), *args], stdout=subprocess.DEVNULL, stderr=log, text=True,
                                start_new_session=True, preexec_fn=limits, cwd=ctx.work)
        hang = False
        while True:  # wait4, not poll: the child's own peak RSS comes with its exit status
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                hang = True
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.2)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        log.seek(0)
        err = log.read()
    lines = [line for line in err.splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith(("error:", "warning:"))), lines[-1] if lines else "")
    outcome = Outcome(name, cls, rc, round(time.monotonic() - start, 1), hang, "Traceback" in err, 0, first.strip(),
                      f"peak RSS {usage.ru_maxrss / (1 << 20):.2f} GiB", len(lines))
    ctx.results.append(outcome)
    print(f"{name:38s} {outcome.summary()}", flush=True)
    return outcome, usage.ru_maxrss << 10


def memory(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "memory")
    big = d / "big"
    big.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (6000, 6000, 3), dtype=np.uint8)).save(big / "big.jpg", quality=70)
    for model in ("deeplab", "dsspn"):
        outcome, peak = peak_run(ctx, f"predict --short 512, 6000x6000, {model}",
                                 ["predict", "--checkpoint", str(p[model]), str(big), "--out", str(d / f"out_{model}"),
                                  "--short", "512", "--no-overlays", "--dataset", "cityscapes"])
        value = judge(outcome, ok_rc=0)
        if value != "ok" and not outcome.hang and ("memory" in outcome.line.lower() or "alloc" in outcome.line.lower()
                                                  or outcome.rc in (-9, 137) or outcome.traceback):
            value = "memory"
        verdict(ctx, outcome, value, "memory")
    city = d / "cityscapes"
    shutil.copytree(p["data"] / "cityscapes", city)
    image = next((city / "leftImg8bit" / "val").rglob("*.png"))
    label = next((city / "gtFine" / "val").rglob("*_labelIds.png"))
    Image.open(image).convert("RGB").resize((4000, 4000)).save(image)
    Image.open(label).resize((4000, 4000), Image.NEAREST).save(label)
    for other in [p for p in (city / "leftImg8bit" / "val").rglob("*.png") if p != image]:
        other.unlink()
        stem = other.name.replace("_leftImg8bit.png", "")
        for lab in (city / "gtFine" / "val").rglob(f"{stem}_*"):
            lab.unlink()
    outcome, _ = peak_run(ctx, "eval --short 512, 4000x4000, deeplab",
                          ["eval", "--checkpoint", str(p["deeplab"]), "--dataset", "cityscapes", str(city), "--short",
                           "512", "--format", "json"])
    value = judge(outcome, ok_rc=0)
    verdict(ctx, outcome, "memory" if value != "ok" and not outcome.hang else value, "memory")
    outcome, _ = peak_run(ctx, "data synth --size 100000",
                          ["data", "synth", "--dataset", "ade20k", "--out", str(d / "huge"), "--n", "1", "--size",
                           "100000"], timeout=300)
    verdict(ctx, outcome, judge(outcome), "memory")


# ------------------------------------------------------------------------------------------------------ synth


def synth(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "synth")
    out = d / "ade"
    args = ["data", "synth", "--dataset", "ade20k", "--out", str(out), "--size", "32"]
    run(ctx, "setup: synth n=3 seed 1", "synth", [*args, "--n", "3", "--seed", "1"], record=False)
    ref = d / "ref"
    run(ctx, "setup: the same, elsewhere", "synth", ["data", "synth", "--dataset", "ade20k", "--out", str(ref), "--size",
                                                     "32", "--n", "3", "--seed", "1"], record=False)

    def same_as_ref() -> bool:
        def files(root: Path) -> dict[str, bytes]:
            return {f.relative_to(root).as_posix(): f.read_bytes() for f in root.rglob("*")
                    if f.is_file() and not f.name.startswith(".")}

        return files(out) == files(ref)

    case(ctx, "synth", "synth n=2 seed 5 into it", [*args, "--n", "2", "--seed", "5"], "--overwrite",
         check=lambda o: "silent wrong" if o.rc == 0 and not same_as_ref() else None)
    mixed_now = not same_as_ref()
    case(ctx, "synth", "data check of that folder", ["data", "check", str(out), "--dataset", "ade20k", "--split",
                                                     "training"], "did not write", ok_rc=2 if mixed_now else 0)
    mixed = d / "mixed"
    run(ctx, "setup: synth a", "synth", ["data", "synth", "--dataset", "ade20k", "--out", str(mixed), "--size", "32",
                                         "--n", "2", "--seed", "1"], record=False)
    other = d / "other"
    run(ctx, "setup: synth b", "synth", ["data", "synth", "--dataset", "ade20k", "--out", str(other), "--size", "32",
                                         "--n", "3", "--seed", "2"], record=False)
    for f in other.rglob("*.*"):
        target = mixed / f.relative_to(other)
        if not target.exists() and not f.name.startswith("."):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, target)  # a third sample of another seed: a mix that pairs up
    case(ctx, "synth", "data check of a mixed folder", ["data", "check", str(mixed), "--dataset", "ade20k", "--split",
                                                        "training"], "did not write")
    mine = d / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    case(ctx, "synth", "synth into a folder of other files", ["data", "synth", "--dataset", "ade20k", "--out",
                                                              str(mine), "--size", "32", "--n", "1"], "empty")
    if flag_supported(ctx, ["data", "synth"], "--overwrite"):
        case(ctx, "synth", "synth --overwrite replaces whole", [*args, "--n", "1", "--seed", "7", "--overwrite"], ok_rc=0,
             check=lambda o: None if len(list(out.rglob("*.png"))) == 2 else "silent wrong")


# --------------------------------------------------------------------------------------------------- messages


def png_header(path: Path, width: int, height: int, mode: int = 0) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def messages(ctx: Context, p: dict[str, Path]) -> None:
    d = fresh(ctx, "messages")
    city = str(p["data"] / "cityscapes")
    images = str(p["data"] / "cityscapes" / "leftImg8bit" / "val")
    for device in ("cuda", "tpu"):
        case(ctx, "messages", f"eval --device {device}", ["eval", "--checkpoint", str(p["deeplab"]), "--dataset",
                                                          "cityscapes", city, "--device", device], device)
        case(ctx, "messages", f"predict --device {device}", ["predict", "--checkpoint", str(p["deeplab"]), images,
                                                             "--out", str(d / "p"), "--device", device], device)
    huge = png_header(d / "huge.png", 30000, 30000)
    case(ctx, "messages", "30000x30000 PNG: predict", ["predict", "--checkpoint", str(p["deeplab"]), str(huge), "--out",
                                                       str(d / "p2")], "huge.png")
    labels = d / "huge_labels"
    labels.mkdir()
    png_header(labels / "a.png", 30000, 30000)
    case(ctx, "messages", "30000x30000 PNG: labels stats", ["labels", "stats", *ctx.glob, "--dataset", "cityscapes",
                                                            str(labels)], "a.png")
    case(ctx, "messages", "30000x30000 PNG: labels remap", ["labels", "remap", *ctx.glob, "--from", "cityscapes", "--to",
                                                            "mapillary", str(labels), str(d / "r")], "a.png")
    deep = d / "deep16"
    deep.mkdir()
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(deep / "a.png")
    case(ctx, "messages", "16-bit image: predict", ["predict", "--checkpoint", str(p["deeplab"]), str(deep), "--out",
                                                    str(d / "p3")], "16-bit")
    run_dir = d / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"stage": "main", "step": 1}\n')
    case(ctx, "messages", "metrics record without fields: plot", ["plot", str(run_dir)], "metrics.jsonl:1")
    (run_dir / "metrics.jsonl").write_text("[" * 100000 + "]" * 100000 + "\n")
    case(ctx, "messages", "metrics line nested 100000 deep: plot", ["plot", str(run_dir)], "metrics.jsonl")
    tree = d / "deep.json"
    tree.write_text("[" * 100000 + "]" * 100000)
    case(ctx, "messages", "tree nested 100000 deep: stats", ["taxonomy", "stats", str(tree)], "deep")
    table = d / "long.csv"
    table.write_text("id,name,synonyms,color,evaluated\n1," + "x" * (200 << 10) + ",,1;2;3,1\n")
    case(ctx, "messages", "200 KiB label name: data check --labels",
         ["data", "check", city, "--dataset", "mine", "--labels", str(table)], "long.csv")
    case(ctx, "messages", "200 KiB label name: suggest --labels", ["taxonomy", "suggest", "--labels", str(table)],
         "long.csv", timeout=120)
    table = d / "scripts.csv"
    table.write_text("id,name\n1,草地\n2,道路\n", encoding="utf-8")
    case(ctx, "messages", "label names in another script: suggest", ["taxonomy", "suggest", "--labels", str(table),
                                                                     "--format", "json"], ok_rc=0, timeout=120)
    forged = d / "m.pt\nerror: all is fine"
    case(ctx, "messages", "newline in a checkpoint name", ["eval", "--checkpoint", str(forged), "--dataset",
                                                           "cityscapes", city], "\\n")
    names = d / "names"
    names.mkdir()
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(names / "a\nerror: fine.png")
    case(ctx, "messages", "newline in a label file name: remap", ["labels", "remap", *ctx.glob, "--from", "cityscapes",
                                                                  "--to", "mapillary", str(names), str(d / "rn")], "\\n")
    # a failed start: init.backbone_from a damaged file fails after the run folder was opened; the fixed config must
    # then start in the same output.dir
    bad = d / "bad.pt"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(256))
    cfg = write_config(d / "fail.yaml", p["data"], d / "run_fail", DEEPLAB, steps=1,
                       extra={"init": {"backbone_from": str(bad)}})
    run(ctx, "setup: failed start", "messages", ["train", "--config", str(cfg)], timeout=180, record=False)
    cfg = write_config(d / "fixed.yaml", p["data"], d / "run_fail", DEEPLAB, steps=1)
    case(ctx, "messages", "next run after a failed start", ["train", "--config", str(cfg)], ok_rc=0, timeout=180)
    # scored in tree space: ground truth remapped --to tree, scored --space tree (issue 22's to fix)
    city_dir = p["data"] / "cityscapes"
    tree_labels = d / "tree_labels"
    run(ctx, "setup: remap to tree", "messages", ["labels", "remap", "--from", "cityscapes", "--to", "tree", "--split",
                                                  "val", str(city_dir), str(tree_labels)], record=False)
    outcome, out, _ = run(ctx, "scored --space tree: GT remapped to tree", "messages",
                          ["eval", "--predictions", str(tree_labels), "--space", "tree", "--dataset", "cityscapes",
                           str(city_dir), "--format", "json"], timeout=180)
    try:
        miou = json.loads(out)["miou"]
    except (ValueError, KeyError, TypeError):
        miou = None
    value = judge(outcome, ok_rc=0)
    if value == "ok" and (miou is None or abs(miou - 1.0) > 1e-9):
        value = "silent wrong (issue 22)"
    outcome.line = f"mIoU {miou}" if miou is not None else outcome.line
    verdict(ctx, outcome, value, "messages")


def _verdict(record: dict) -> str:
    extra = record.get("extra", "")
    return extra.split(";")[0].removeprefix("verdict: ") if extra.startswith("verdict: ") else "?"


def compare(before: Path, after: Path) -> str:
    """Markdown: per class, the cases and how many were handled before and after; then every case."""
    rows = {"b": json.loads(before.read_text()), "a": json.loads(after.read_text())}
    judged = {k: {r["case"]: r for r in v if r.get("extra", "").startswith("verdict: ")} for k, v in rows.items()}
    lines = ["| class | cases | handled before (of those run) | handled after | not handled before | not handled after |",
             "|---|---|---|---|---|---|"]
    for cls in CLASSES:
        names = [n for n, r in judged["a"].items() if r["fault"] == cls] or \
                [n for n, r in judged["b"].items() if r["fault"] == cls]
        before = Counter(_verdict(judged["b"][n]) for n in names if n in judged["b"])
        after = Counter(_verdict(judged["a"][n]) for n in names if n in judged["a"])

        def worse(counts: Counter) -> str:
            return ", ".join(f"{n} {v}" for v, n in sorted(counts.items()) if v != "ok") or "-"

        lines.append(f"| {cls} | {len(names)} | {before['ok']} of {sum(before.values())} | {after['ok']} of "
                     f"{sum(after.values())} | {worse(before)} | {worse(after)} |")
    lines += ["", "| case | before | after |", "|---|---|---|"]
    for name, record in judged["a"].items():
        old = judged["b"].get(name)

        def cell(r: dict | None) -> str:
            if r is None:
                return "not run"
            text = re.sub(r"/[^\s:]*/cases/", "", r["line"]).replace("|", "/")  # paths relative to the work folder
            text = text if len(text) < 110 else text[:107] + "..."
            extra = [p for p in r.get("extra", "").split("; ")[1:] if p.startswith("peak RSS")]
            return f"**{_verdict(r)}** (exit {r['rc']}) {text}" + (f" ({extra[0]})" if extra else "")

        lines.append(f"| {record['fault']}: {name} | {cell(old)} | {cell(record)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if "--compare" in sys.argv:  # python bench/fault_table2.py --compare BEFORE.json AFTER.json
        index = sys.argv.index("--compare")
        print(compare(Path(sys.argv[index + 1]), Path(sys.argv[index + 2])), end="")
        return
    parser.add_argument("--hierseg", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--only", nargs="*", default=list(CLASSES))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--update", action="store_true", help="keep --json's records of the classes not run")
    args = parser.parse_args()
    hierseg = args.hierseg.absolute()
    ctx = Context(hierseg, hierseg.parent / "python", args.work.absolute())
    os.environ["FAULT_PYTHON"] = str(ctx.python)
    usage = subprocess.run([str(hierseg), "labels", "remap", "--help"], capture_output=True, text=True).stdout
    ctx.glob = ["--glob", "*.png"] if "--glob" in usage else []
    ctx.work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    functions = {"checkpoint": checkpoint, "links": links, "remap": remap, "tree": tree, "readers": readers,
                 "yaml": yaml_cases, "memory": memory, "synth": synth, "messages": messages}
    try:
        paths = setup(ctx)
        for name in args.only:
            print(f"== {name}", flush=True)
            functions[name](ctx, paths)
    finally:
        teardown(ctx)
        if args.json:
            kept = [r for r in json.loads(args.json.read_text()) if r["fault"] not in args.only] \
                if args.update and args.json.exists() else []
            args.json.write_text(json.dumps(kept + [asdict(r) for r in ctx.results], indent=1))
        verdicts = Counter((r.fault, r.extra.split(";")[0].removeprefix("verdict: ")) for r in ctx.results
                           if r.extra.startswith("verdict: "))
        for cls in CLASSES:
            row = {v: n for (c, v), n in verdicts.items() if c == cls}
            if row:
                print(f"{cls:12s} {sum(row.values()):3d} cases: " + ", ".join(f"{n} {v}" for v, n in sorted(row.items())))


if __name__ == "__main__":
    sys.exit(main())
