"""Universal against single-dataset training, and DSSPN against the flat DeepLab head, on synthetic Cityscapes and
Mapillary, same budget for every arm (issue 7).

    python bench/universal_bench.py [--steps 300] [--size 128] [--crop 112] [--n 64] [--batch 8] [--lr 0.02]
                                    [--seed 0] [--arms dsspn-universal dsspn-mapillary ... | all] [--threads 2]

Both datasets are synthesised (``n`` images per split, ``size`` x ``size``) from the same fine scenes, labelled at
each dataset's granularity: the lane-marking pixels Mapillary labels ``marking--*`` are ``road`` in Cityscapes.
Every arm trains a ResNet-18 model from scratch (no weights can be downloaded) for the same number of SGD steps
(momentum 0.9, weight decay 1e-4, poly learning rate) at the same batch size, one dataset per batch; a universal
arm draws its batches from both datasets, a single arm from one. DSSPN's universal and single arms are the same
model (``dataset=`` per batch selects the concept mask) and differ only in the batches they see; DeepLab's
universal arm scores the tree's leaves (``LeafClasses``), its single arms one dataset's classes.

Each arm is evaluated on the val split of every dataset it trained on, in that dataset's ids, whole images:

- lane: mIoU over Mapillary's lane-marking classes (``marking--crosswalk-zebra``, ``marking--general``), concepts
  only Mapillary labels;
- reverse: mIoU over the evaluated Cityscapes classes that Mapillary does not label at the same granularity (their
  Cityscapes -> Mapillary relation is ``finer-ambiguous``: Mapillary splits them, e.g. ``road`` into road surface,
  lane markings, manholes...; no evaluated Cityscapes class is finer than Mapillary's), scored with a model that
  also saw Mapillary's finer labels;
- the overall mIoU of each dataset.

The table is printed as it comes out, then the deltas universal - single and DSSPN - DeepLab. The default arms are
DSSPN universal and single (one per dataset) and DeepLab universal (the same budget as DSSPN universal); ``--arms
all`` adds DeepLab's single-dataset arms. On an idle 2-core CPU the defaults take about 10 minutes (about 0.5 s a
step at batch 8, crop 112, for either model); on a loaded machine DSSPN's many small convolutions slow down most.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hierseg.data.loader import multi_dataset_loader
from hierseg.data.readers import official
from hierseg.data.synth import synthesize
from hierseg.data.transforms import TrainTransform
from hierseg.engine.evaluate import EvalReport, evaluate, resolve_split
from hierseg.models import create_model
from hierseg.taxonomy import Taxonomy, load_spec, translation

CS, MV = "cityscapes", "mapillary"
LANE_PREFIX = "marking--"  # Mapillary's lane-marking labels


@dataclass(frozen=True)
class Arm:
    name: str
    model: str
    datasets: tuple[str, ...]  # trained on, and evaluated on


ARMS = {arm.name: arm for arm in (
    Arm("dsspn-universal", "dsspn_resnet18", (CS, MV)),
    Arm("dsspn-mapillary", "dsspn_resnet18", (MV,)),
    Arm("dsspn-cityscapes", "dsspn_resnet18", (CS,)),
    Arm("deeplab-universal", "deeplab_resnet18", (CS, MV)),
    Arm("deeplab-mapillary", "deeplab_resnet18", (MV,)),
    Arm("deeplab-cityscapes", "deeplab_resnet18", (CS,)),
)}
DEFAULT_ARMS = ("dsspn-universal", "dsspn-mapillary", "dsspn-cityscapes", "deeplab-universal")


def lane_ids() -> tuple[int, ...]:
    return tuple(label.id for label in load_spec(MV).labels if label.evaluated and label.name.startswith(LANE_PREFIX))


def reverse_ids(tax: Taxonomy) -> tuple[int, ...]:
    """Evaluated Cityscapes labels whose concept Mapillary splits (relation ``finer-ambiguous``)."""
    evaluated = {label.id for label in load_spec(CS).labels if label.evaluated}
    return tuple(e.source_id for e in translation(tax, CS, MV).entries
                 if e.relation == "finer-ambiguous" and e.source_id in evaluated)


def names(dataset: str, ids: tuple[int, ...]) -> str:
    by_id = {label.id: label.name for label in load_spec(dataset).labels}
    return ", ".join(f"{by_id[i]} ({i})" for i in ids)


def subset_miou(report: EvalReport, ids: tuple[int, ...]) -> float:
    """Mean IoU over ``ids`` among the classes present in ground truth or prediction (NaN when none is)."""
    values = [c.iou for c in report.metrics.classes if c.id in ids and not math.isnan(c.iou)]
    return sum(values) / len(values) if values else math.nan


def build(arm: Arm, args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(args.seed)  # every arm of a family starts from the same weights
    if arm.model.startswith("dsspn"):
        return create_model(arm.model, m=args.m)
    return create_model(arm.model, datasets=arm.datasets)


def train(model: torch.nn.Module, arm: Arm, root: Path, args: argparse.Namespace) -> float:
    """``args.steps`` SGD steps on batches of ``arm.datasets``; returns the seconds spent."""
    data = [official(ds, root / ds, resolve_split(ds, "train"), seed=args.seed,
                     transform=TrainTransform(crop=args.crop, ignore=load_spec(ds).ignore)) for ds in arm.datasets]
    loader, sampler = multi_dataset_loader(data, args.batch, seed=args.seed, workers=0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    model.train()
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
            if step % max(1, args.steps // 5) == 0:
                print(f"  {arm.name}: step {step}/{args.steps} loss {loss.item():.3f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
        epoch += 1
    return time.perf_counter() - start


def fmt(value: float | None, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per arm")
    parser.add_argument("--size", type=int, default=128, help="side of the synthetic images")
    parser.add_argument("--crop", type=int, default=112, help="training crop")
    parser.add_argument("--n", type=int, default=64, help="synthetic images per split and dataset")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--m", type=int, default=32, help="DSSPN neuron width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=[*ARMS, "all"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tax = Taxonomy.load()
    lane, reverse = lane_ids(), reverse_ids(tax)
    arms = list(ARMS.values()) if "all" in args.arms else [ARMS[name] for name in args.arms]
    wall = time.perf_counter()
    print(f"universal vs single, DSSPN vs DeepLab: ResNet-18 from scratch, {args.steps} steps x batch {args.batch}, "
          f"crop {args.crop}, lr {args.lr} (poly), synthetic {args.size}x{args.size}, {args.n} images per split, "
          f"seed {args.seed}, CPU {torch.get_num_threads()} threads")
    print(f"lane (mapillary): {names(MV, lane)}")
    print(f"reverse (cityscapes): {names(CS, reverse)}\n")

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for ds in sorted({ds for arm in arms for ds in arm.datasets}):
            synthesize(ds, root / ds, n=args.n, size=args.size, seed=args.seed)
        for arm in arms:
            model = build(arm, args)
            row = {"seconds": train(model, arm, root, args)}
            for ds in arm.datasets:
                report = evaluate(model, ds, root / ds, "val", device="cpu")
                row[ds] = report.metrics.miou
                if ds == MV:
                    row["lane"] = subset_miou(report, lane)
                    print(f"  {arm.name} lane IoU: " + ", ".join(
                        f"{c.name} {fmt(c.iou)}" for c in report.metrics.classes if c.id in lane))
                else:
                    row["reverse"] = subset_miou(report, reverse)
                    print(f"  {arm.name} reverse IoU: " + ", ".join(
                        f"{c.name} {fmt(c.iou)}" for c in report.metrics.classes if c.id in reverse))
            results[arm.name] = row

    print(f"\n{'arm':<20} {'trained on':<22} {'lane mIoU':>9} {'reverse mIoU':>12} {'MV mIoU':>8} {'CS mIoU':>8} "
          f"{'train s':>8}")
    for arm in arms:
        r = results[arm.name]
        print(f"{arm.name:<20} {'+'.join(arm.datasets):<22} {fmt(r.get('lane')):>9} {fmt(r.get('reverse')):>12} "
              f"{fmt(r.get(MV)):>8} {fmt(r.get(CS)):>8} {r['seconds']:>8.0f}")

    print("\ndeltas (points of IoU)")
    for family in ("dsspn", "deeplab"):
        uni = results.get(f"{family}-universal")
        for ds, key in ((MV, "lane"), (CS, "reverse")):
            single = results.get(f"{family}-{ds}")
            if uni is not None and single is not None:
                print(f"  {family} universal - single-{ds}: {key} {fmt(uni[key] - single[key], True)}, "
                      f"{ds} mIoU {fmt(uni[ds] - single[ds], True)}")
    for kind in ("universal", MV, CS):
        dsspn, deeplab = results.get(f"dsspn-{kind}"), results.get(f"deeplab-{kind}")
        if dsspn is None or deeplab is None:
            continue
        parts = [f"{key} {fmt(dsspn[key] - deeplab[key], True)}" for key in ("lane", "reverse", MV, CS)
                 if key in dsspn and key in deeplab]
        print(f"  dsspn - deeplab ({kind}): " + ", ".join(parts))
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
