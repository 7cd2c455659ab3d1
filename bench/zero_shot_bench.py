"""Zero-shot transfer through the tree in MSeg's form (issue 21): models trained on three of the four built-in
datasets, scored with no further training on datasets they never saw, each in its own ids, through the tree.

    python bench/zero_shot_bench.py [--budget tiny|small|default] [--seeds 0] [--held-out cityscapes]
                                    [--tests cityscapes pascal_voc camvid kitti] [--save RUN.json]
                                    [--load RUN.json ...] [--timing]

All data is synthesised (``hierseg.data.synth``: the same fine scenes labelled at each dataset's granularity). Rows:

- ``dsspn-universal``, ``deeplab-universal``: one model trained on the three built-in datasets other than
  ``--held-out`` (batches drawn from all three), on the shipped tree;
- ``deeplab-<dataset>``: a single-dataset DeepLab on each of those three (MSeg's "best single-dataset model" is the
  best of these per column);
- ``oracle``: per test dataset, a single-dataset DeepLab trained on that dataset's own synthetic train split (a
  separate synthesis of the scenes, seed + 1000: test images are never trained on; KITTI's one split included).

Columns: the held-out built-in dataset and synthetic PASCAL VOC, CamVid and KITTI (added with their specs, the tree
``taxonomy build --add`` writes), each scored on its val split (KITTI: ``training``) by mIoU over its evaluated
labels, then the harmonic mean over the columns, as MSeg's README tabulates it. Every non-oracle row is given with
both projection rules (``sum``: probabilities summed over each label's extent, DSSPN's extent plan; ``argmax``:
the tree's answer, then translated), and with ``reach``: mIoU over the labels the model can output at all.

Every arm trains a ResNet-18 from scratch (no weights can be downloaded) for the same number of SGD steps (momentum
0.9, weight decay 1e-4, poly rate), one dataset per batch. ``--timing``: the projection's cost, ``hierseg eval``'s
``evaluate`` on one trained dataset's val split with the model's own decoding against ``--projection sum`` and
``argmax`` on the very same images (best of three each, larger images), so only the decoding differs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see universal_bench.py: spinning OpenMP threads on a shared CPU

import torch  # noqa: E402

from hierseg.data.layouts import resolve_split  # noqa: E402
from hierseg.data.loader import multi_dataset_loader  # noqa: E402
from hierseg.data.readers import official  # noqa: E402
from hierseg.data.synth import synthesize  # noqa: E402
from hierseg.data.transforms import TrainTransform  # noqa: E402
from hierseg.engine.evaluate import InferenceOptions, evaluate  # noqa: E402
from hierseg.models import create_model  # noqa: E402
from hierseg.taxonomy import Taxonomy  # noqa: E402
from hierseg.taxonomy.specs import SPEC_DIR, dataset_spec  # noqa: E402

BUILT_IN = ("coco_stuff", "ade20k", "cityscapes", "mapillary")
ADDED = ("pascal_voc", "camvid", "kitti")
RULES = ("sum", "argmax")
SHORT = {"coco_stuff": "COCO", "ade20k": "ADE", "cityscapes": "CS", "mapillary": "MV", "pascal_voc": "VOC",
         "camvid": "CamVid", "kitti": "KITTI"}
BUDGETS = {  # smoke: checks the script runs; tiny, small: what a loaded 2-core CPU affords; default: universal_bench's
    "smoke": dict(steps=2, size=48, crop=40, n=2, batch=2),
    "tiny": dict(steps=60, size=64, crop=56, n=12, batch=4),
    "small": dict(steps=180, size=64, crop=56, n=16, batch=4),
    "default": dict(steps=300, size=128, crop=112, n=64, batch=8),
}


def extended_tree(out: Path) -> tuple[Taxonomy, Path]:
    """The shipped tree with VOC, CamVid and KITTI added from their specs (what ``taxonomy build --add`` writes)."""
    from hierseg.taxonomy.authoring.build import build_artifact
    from hierseg.taxonomy.authoring.extend import extend_artifact, load_addition
    from hierseg.taxonomy.authoring.wordnet import load_wordnet

    wordnet = load_wordnet()
    artifact = extend_artifact(build_artifact(wordnet=wordnet), [load_addition(SPEC_DIR / f"{d}.yaml") for d in ADDED],
                               wordnet)
    path = out / "tree.json"
    path.write_text(json.dumps(artifact))
    return Taxonomy(artifact), path


def eval_split(dataset: str, tree: Taxonomy) -> str:
    return resolve_split(dataset, "training" if dataset == "kitti" else "val", tree)


def train(model: torch.nn.Module, datasets: tuple[str, ...], root: Path, tree: Taxonomy, args: argparse.Namespace,
          seed: int) -> float:
    """``args.steps`` SGD steps on batches of ``datasets`` (their train split under ``root``); returns seconds."""
    data = [official(ds, root / ds, resolve_split(ds, "training" if ds == "kitti" else "train", tree), seed=seed,
                     taxonomy=tree, transform=TrainTransform(crop=args.crop, ignore=dataset_spec(ds, tree.artifact).ignore))
            for ds in datasets]
    loader, sampler = multi_dataset_loader(data, args.batch, seed=seed, workers=0)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=args.lr, momentum=0.9,
                                weight_decay=1e-4)
    step, epoch, start = 0, 0, time.perf_counter()
    while step < args.steps:
        sampler.set_epoch(epoch)
        for d in data:
            d.set_epoch(epoch)
        for batch in loader:
            if step >= args.steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = args.lr * (1 - step / args.steps) ** 0.9
            loss = model(batch["image"], batch["label"], batch["dataset"])["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        epoch += 1
    print(f"  trained on {', '.join(datasets)}: {args.steps} steps, loss {loss.item():.3f}, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return time.perf_counter() - start


def score(model: torch.nn.Module, dataset: str, tests: Path, tree: Taxonomy, rule: str | None) -> dict[str, float]:
    report = evaluate(model, dataset, tests / dataset, eval_split(dataset, tree), taxonomy=tree, projection=rule,
                      options=InferenceOptions())
    section = report.section("reach")
    out = {"miou": report.miou, "seconds": report.seconds}
    if section is not None:
        out.update(reach=section.value("miou_reachable"), unreachable=[r[1] for r in section.rows])
    return out


def run(args: argparse.Namespace, seed: int, work: Path, tree: Taxonomy) -> dict[str, dict[str, Any]]:
    train_root, test_root = work / f"train{seed}", work / f"test{seed}"
    trained_on = tuple(d for d in BUILT_IN if d != args.held_out)
    for ds in sorted({*trained_on, *args.tests}):
        if not (train_root / ds).exists():
            synthesize(ds, train_root / ds, n=args.n, size=args.size, seed=seed, taxonomy=work / "tree.json")
    for ds in args.tests:
        if not (test_root / ds).exists():
            synthesize(ds, test_root / ds, n=args.n, size=args.size, seed=seed + 1000, taxonomy=work / "tree.json")
    plain = Taxonomy.load()
    rows: dict[str, dict[str, Any]] = {}
    models: list[tuple[str, torch.nn.Module]] = []
    torch.manual_seed(seed)
    models.append(("dsspn-universal", create_model("dsspn_resnet18", m=32, taxonomy=plain)))
    torch.manual_seed(seed)
    models.append(("deeplab-universal", create_model("deeplab_resnet18", datasets=list(trained_on), taxonomy=plain)))
    for ds in trained_on:
        torch.manual_seed(seed)
        models.append((f"deeplab-{ds}", create_model("deeplab_resnet18", datasets=[ds], taxonomy=plain)))
    for name, model in models:
        datasets = trained_on if "universal" in name else (name.split("-", 1)[1],)
        train(model, datasets, train_root, plain, args, seed)
        model.eval()
        for rule in RULES:
            rows[f"{name} {rule}"] = {ds: score(model, ds, test_root, tree, rule) for ds in args.tests}
            print(f"  {name} {rule}: " + ", ".join(f"{SHORT[d]} {100 * r['miou']:.1f}"
                                                  for d, r in rows[f"{name} {rule}"].items()), flush=True)
    oracle: dict[str, Any] = {}
    for ds in args.tests:
        torch.manual_seed(seed)
        model = create_model("deeplab_resnet18", datasets=[ds], taxonomy=tree)
        train(model, (ds,), train_root, tree, args, seed)
        oracle[ds] = score(model.eval(), ds, test_root, tree, None)
    rows["oracle (trained on the target)"] = oracle
    return rows


def harmonic(values: list[float]) -> float:
    return statistics.harmonic_mean(values) if all(v > 0 for v in values) else 0.0


def table(results: dict[int, dict[str, dict[str, Any]]], tests: list[str]) -> None:
    seeds = sorted(results)
    rows = list(results[seeds[0]])
    print(f"\nmIoU (%) on each test dataset, zero-shot unless oracle; mean over seeds {seeds}; "
          "reach: mIoU over the labels the model can output")
    print("| model | projection | " + " | ".join(SHORT[t] for t in tests) + " | h. mean |")
    print("| --- | --- | " + " | ".join("---:" for _ in tests) + " | ---: |")
    for row in rows:
        name, _, rule = row.rpartition(" ") if not row.startswith("oracle") else (row, "", "own")
        means = [statistics.mean(results[s][row][t]["miou"] for s in seeds) for t in tests]
        cells = []
        for t, m in zip(tests, means, strict=True):
            reach = [results[s][row][t].get("reach") for s in seeds]
            extra = f" ({100 * statistics.mean(reach):.1f})" if None not in reach and \
                any(results[s][row][t].get("unreachable") for s in seeds) else ""
            cells.append(f"{100 * m:.1f}{extra}")
        print(f"| {name} | {rule} | " + " | ".join(cells) + f" | {100 * harmonic(means):.1f} |")
    print("\nunreachable labels (evaluated), per model and test dataset:")
    for row in rows:
        lost = {t: results[seeds[0]][row][t].get("unreachable") for t in tests}
        lost = {t: v for t, v in lost.items() if v}
        if lost:
            print(f"  {row}: " + "; ".join(f"{SHORT[t]}: {', '.join(v)}" for t, v in lost.items()))


def timing(args: argparse.Namespace, work: Path, tree: Taxonomy) -> None:
    """Evaluation with the model's own decoding against both projections, on the same images and model."""
    plain = Taxonomy.load()
    ds = "mapillary"
    root = work / "timing" / ds
    if not root.exists():
        synthesize(ds, root, n=args.timing_n, size=args.timing_size, seed=7)
    torch.manual_seed(0)
    model = create_model("deeplab_resnet18", datasets=["cityscapes", "mapillary"], taxonomy=plain).eval()
    print(f"\ntiming: universal DeepLab-ResNet-18 on {args.timing_n} synthetic {ds} val images of "
          f"{args.timing_size}x{args.timing_size}, best of 3")
    best: dict[str, float] = {}
    for _ in range(3):
        for rule in (None, "sum", "argmax"):
            start = time.perf_counter()
            evaluate(model, ds, root, "val", taxonomy=tree, projection=rule, options=InferenceOptions())
            seconds = time.perf_counter() - start
            key = rule or "own decoding"
            best[key] = min(best.get(key, math.inf), seconds)
    base = best["own decoding"]
    for key, seconds in best.items():
        print(f"  {key}: {seconds:.2f} s ({seconds / base:.3f} x own decoding)")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--held-out", default="cityscapes", choices=BUILT_IN)
    parser.add_argument("--tests", nargs="+", default=None, help="test datasets (default: held-out + VOC, CamVid, KITTI)")
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--work", type=Path, default=None, help="folder for data (default: a temporary one)")
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--load", type=Path, nargs="+", default=[], help="results saved by --save: their seeds are "
                        "reported, not retrained (same budget and tests assumed)")
    parser.add_argument("--timing", action="store_true", help="only the projection's cost (no training)")
    parser.add_argument("--timing-n", type=int, default=8)
    parser.add_argument("--timing-size", type=int, default=512)
    args = parser.parse_args()
    for key, value in BUDGETS[args.budget].items():
        setattr(args, key, value)
    args.tests = args.tests or [args.held_out, *ADDED]
    return args


def main() -> None:
    args = parse()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        tree, _ = extended_tree(work)
        if args.timing:
            timing(args, work, tree)
            return
        print(f"budget {args.budget}: {args.steps} steps of batch {args.batch}, crop {args.crop}, images "
              f"{args.size}x{args.size}, {args.n} per split; held out: {args.held_out}", flush=True)
        results = {int(k): v for path in args.load for k, v in json.loads(path.read_text()).items()}
        for seed in args.seeds:
            if seed not in results:
                results[seed] = run(args, seed, work, tree)
        if args.save:
            args.save.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
        table(results, args.tests)


if __name__ == "__main__":
    main()
