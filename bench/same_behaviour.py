"""Does a refactor keep behaviour? Fixed-seed training and evaluation of two models, reduced to digests to compare
between two checkouts (issue 25: "bit-equal weights and identical eval JSON").

    python bench/same_behaviour.py --work /tmp/before --out before.json     # in the checkout before the change
    python bench/same_behaviour.py --work /tmp/after --out after.json       # in the checkout after it
    python bench/same_behaviour.py --compare before.json after.json         # exit 1 if anything differs

Each run synthesises small Cityscapes and Mapillary copies (``hierseg data synth``), trains a universal DSSPN (with
periodic validation, ``best.pt`` and a short fine-tune, so the hooks run) and a universal DeepLab with ``hierseg
train`` at a fixed seed on the CPU, evaluates each final checkpoint on both val splits with ``hierseg eval --format
json``, and records a SHA-256 over every tensor of every checkpoint (names, dtypes, shapes, bytes), over the run's
``metrics.jsonl`` (losses, rates, validation scores) and over each evaluation's JSON, wall-clock fields left out.
Run both sides with the same ``--work`` path (the JSON names the data's root). Two minutes on two cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from hierseg.engine.checkpoint import read_checkpoint

DATASETS = ("cityscapes", "mapillary")
MODELS = {
    "dsspn": {"name": "dsspn_resnet18", "kwargs": {"m": 16, "output_stride": 8, "frozen_bn": False}},
    "deeplab": {"name": "deeplab_resnet18", "kwargs": {"datasets": list(DATASETS), "output_stride": 16}},
}


def hierseg(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "hierseg.cli.main", *args], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if result.returncode != 0:
        raise SystemExit(f"hierseg {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def config(work: Path, key: str) -> Path:
    lines = [f"model: {json.dumps(MODELS[key])}",
             "data:", "  workers: 0", "  datasets:",
             *(f"    - {{name: {d}, root: {work / 'data' / d}, crop: 81, batch_size: 4}}" for d in DATASETS),
             "schedule: {steps: 24}", "optim: {lr_head: 0.02, lr_backbone: 0.02}",
             "run: {device: cpu, seed: 0}",
             f"output: {{dir: {work / key}, log_every: 8, checkpoint_every: 12}}"]
    if key == "dsspn":
        lines += ["finetune: {steps: 4, lr_factor: 0.1}", "eval: {every: 8, limit: 4, best: mean/mIoU}"]
    path = work / f"{key}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


TIMING = {"seconds", "time", "images_per_s"}  # wall-clock figures: the only values allowed to differ


def untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def json_digest(text: str) -> str:
    return hashlib.sha256(json.dumps(untimed(json.loads(text)), sort_keys=True).encode()).hexdigest()


def tensor_digest(path: Path) -> str:
    state = read_checkpoint(path)["state_dict"]
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].contiguous().reshape(-1)
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def run(work: Path) -> dict[str, str]:
    work.mkdir(parents=True, exist_ok=True)
    for d in DATASETS:
        if not (work / "data" / d).exists():
            hierseg("data", "synth", "--dataset", d, "--out", str(work / "data" / d), "--n", "8", "--size", "96",
                    "--classes", "2")
    digests: dict[str, str] = {}
    for key in MODELS:
        hierseg("train", "--config", str(config(work, key)), "--overwrite")
        for checkpoint in sorted((work / key).rglob("*.pt")):
            digests[f"{key}/{checkpoint.relative_to(work / key)}"] = tensor_digest(checkpoint)
        records = (work / key / "metrics.jsonl").read_text().splitlines()
        digests[f"{key}/metrics.jsonl"] = json_digest("[" + ",".join(records) + "]")
        for d in DATASETS:
            report = hierseg("eval", "--checkpoint", str(work / key / "model.pt"), "--dataset", d,
                             str(work / "data" / d), "--format", "json", "--per-class")
            digests[f"{key}/eval/{d}"] = json_digest(report)
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, nargs=2)
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        print(f"{len(a)} digests, {len(differ)} differ" + "".join(f"\n  {k}" for k in differ))
        raise SystemExit(1 if differ else 0)
    digests = run(args.work)
    text = json.dumps(digests, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
