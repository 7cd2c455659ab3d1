"""Universal against single-dataset training, and DSSPN against the flat DeepLab head, on synthetic Cityscapes and
Mapillary: the same budget for every arm, several seeds (issues 7 and 12).

    python bench/universal_bench.py [--budget default|large] [--seeds 0 1] [--arms ... | all]
                                    [--set weighting=pixel ...] [--steps N --size S --crop C --n N --batch B --lr LR]

Both datasets are synthesised (``n`` images per split, ``size`` x ``size``) from the same fine scenes, labelled at
each dataset's granularity: the lane-marking pixels Mapillary labels ``marking--*`` are ``road`` in Cityscapes.
Every arm trains a ResNet-18 model from scratch (no weights can be downloaded) for the same number of SGD steps
(momentum 0.9, weight decay 1e-4, poly learning rate) at the same batch size, one dataset per batch; a universal
arm draws its batches from both datasets, a single arm from one. DSSPN's universal and single arms are the same
model (``dataset=`` per batch selects the concept mask) and differ only in the batches they see; DeepLab's
universal arm scores the tree's leaves (``LeafClasses``), its single arms one dataset's classes. Each DSSPN arm is
evaluated with both inference rules (``greedy``, the paper's, and ``path``); training does not depend on the rule.

Figures, each on the val split of every dataset an arm trained on, in that dataset's ids, whole images:

- ``CS``, ``MV``: mIoU over Cityscapes' 19 and Mapillary's 65 evaluated classes;
- ``shared``: mIoU over the evaluated classes both datasets label alike (translation relation ``equal``), the
  classes on which universal training can help;
- ``lane``: Mapillary's lane-marking classes (``marking--crosswalk-zebra``, ``marking--general``), which
  Cityscapes labels ``road``;
- ``reverse``: the evaluated Cityscapes classes Mapillary splits finer (relation ``finer-ambiguous``, or
  ``overlap`` where a Mapillary label also shares part of their pixels: road and sidewalk with its manholes, terrain
  with its curbs);
- per-class IoU of the nested labels (a label with the same dataset's labels below it in the tree: Cityscapes'
  ``pole`` above its ``polegroup``, Mapillary's ``building`` above its phone booth and ``terrain`` above its sand),
  which DSSPN predicts through its self outputs;
- per dataset, mIoU at each level of the tree (``L1`` .. the deepest, which is the flat mIoU) and the mistakes'
  severity (``sev``: mean levels from the true concept up to where it meets the prediction, over wrong pixels;
  ``parent``: the share of wrong pixels predicted inside the true concept's parent's subtree), issue 22.

Means over seeds are printed with their spread (half the range), then the issue's aims: DSSPN universal at least
DeepLab universal minus one point on both datasets, universal at least single on the shared classes, nested
labels above zero. ``--budget large`` (for a GPU) trains longer on larger images; ``--device cuda`` runs there and
reports images per second and peak memory.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hierseg.core.yamltext import parse_overrides
from hierseg.data.layouts import resolve_split
from hierseg.data.loader import multi_dataset_loader
from hierseg.data.readers import official
from hierseg.data.synth import synthesize
from hierseg.data.transforms import TrainTransform
from hierseg.engine.evaluate import InferenceOptions, evaluate
from hierseg.evaluation.report import EvalReport
from hierseg.models import create_model
from hierseg.taxonomy import Taxonomy, load_spec, translation

CS, MV = "cityscapes", "mapillary"
LANE_PREFIX = "marking--"  # Mapillary's lane-marking labels
RULES = ("greedy", "path")
BUDGETS = {  # the default fits about 45 minutes on an idle 2-core CPU; large is for a GPU
    "default": dict(steps=300, size=128, crop=112, n=64, batch=8),
    "large": dict(steps=4000, size=512, crop=480, n=512, batch=8),
}


@dataclass(frozen=True)
class Arm:
    name: str
    model: str
    datasets: tuple[str, ...]  # trained on, and evaluated on


ARMS = {arm.name: arm for arm in (
    Arm("dsspn-universal", "dsspn_resnet18", (CS, MV)),
    Arm("dsspn-cityscapes", "dsspn_resnet18", (CS,)),
    Arm("dsspn-mapillary", "dsspn_resnet18", (MV,)),
    Arm("deeplab-universal", "deeplab_resnet18", (CS, MV)),
    Arm("deeplab-cityscapes", "deeplab_resnet18", (CS,)),
    Arm("deeplab-mapillary", "deeplab_resnet18", (MV,)),
)}


def evaluated(dataset: str) -> set[int]:
    return {label.id for label in load_spec(dataset).labels if label.evaluated}


def lane_ids() -> tuple[int, ...]:
    return tuple(label.id for label in load_spec(MV).labels if label.evaluated and label.name.startswith(LANE_PREFIX))


def related_ids(tax: Taxonomy, source: str, target: str, *relations: str) -> tuple[int, ...]:
    """Evaluated labels of ``source`` whose translation into ``target`` has one of ``relations``."""
    keep = evaluated(source)
    return tuple(e.source_id for e in translation(tax, source, target).entries
                 if e.relation in relations and e.source_id in keep)


def nested_ids(tax: Taxonomy, dataset: str) -> tuple[int, ...]:
    """Evaluated labels with another label of the same dataset below them in the tree."""
    labels = tax.dataset_concepts(dataset)
    above = {a for c in labels.values() for a in tax.ancestors(c)}
    return tuple(sorted(v for v, c in labels.items() if v in evaluated(dataset) and c in above))


def subset_miou(report: EvalReport, ids: tuple[int, ...]) -> float:
    """Mean IoU over ``ids`` among the classes present in ground truth or prediction (NaN when none is)."""
    values = [c.iou for c in report.metrics.classes if c.id in ids and not math.isnan(c.iou)]
    return sum(values) / len(values) if values else math.nan


def build(arm: Arm, args: argparse.Namespace, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # every arm of a family starts from the same weights
    if arm.model.startswith("dsspn"):
        return create_model(arm.model, m=args.m, **args.dsspn)
    return create_model(arm.model, datasets=arm.datasets)


def train(model: torch.nn.Module, arm: Arm, root: Path, args: argparse.Namespace, seed: int) -> dict[str, float]:
    """``args.steps`` SGD steps on batches of ``arm.datasets``; returns seconds, images/s and peak memory."""
    data = [official(ds, root / ds, resolve_split(ds, "train"), seed=seed,
                     transform=TrainTransform(crop=args.crop, ignore=load_spec(ds).ignore)) for ds in arm.datasets]
    loader, sampler = multi_dataset_loader(data, args.batch, seed=seed, workers=args.workers)
    device = torch.device(args.device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
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
            image, label = batch["image"].to(device), batch["label"].to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                loss = model(image, label, batch["dataset"])["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step % max(1, args.steps // 5) == 0:
                print(f"  {arm.name}: step {step}/{args.steps} loss {loss.item():.3f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan
    return {"seconds": seconds, "images/s": args.steps * args.batch / seconds, "peak GiB": peak}


@dataclass(frozen=True)
class Subsets:
    lane: tuple[int, ...]
    reverse: tuple[int, ...]
    shared: dict[str, tuple[int, ...]]
    nested: dict[str, tuple[int, ...]]


def score(model: torch.nn.Module, arm: Arm, root: Path, subsets: Subsets, args: argparse.Namespace) -> dict[str, Any]:
    """One row of figures per inference rule (one row, ``-``, for DeepLab)."""
    rules = RULES if arm.model.startswith("dsspn") else ("-",)
    rows: dict[str, Any] = {}
    for rule in rules:
        if rule != "-":
            model.inference = rule
        row: dict[str, float] = {}
        for ds in arm.datasets:
            report = evaluate(model, ds, root / ds, "val", device=args.device, options=InferenceOptions())
            row[ds] = report.metrics.miou
            row[f"shared {ds}"] = subset_miou(report, subsets.shared[ds])
            if ds == MV:
                row["lane"] = subset_miou(report, subsets.lane)
            else:
                row["reverse"] = subset_miou(report, subsets.reverse)
            for c in report.metrics.classes:
                if c.id in subsets.nested[ds] or (ds == MV and c.id in subsets.lane):
                    row[f"{ds}:{c.name}"] = c.iou
            row.update(tree_figures(report))
        rows[rule] = row
    return rows


def fmt(values: list[float], signed: bool = False) -> str:
    """Mean over seeds and half the range, in points; ``-`` when nothing was measured."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    mean = 100 * statistics.fmean(values)
    spread = 50 * (max(values) - min(values))
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return f"{text}±{spread:.1f}" if len(values) > 1 else text


def collect(results: dict[tuple[str, str, int], dict[str, float]], arm: str, rule: str, key: str) -> list[float]:
    return [row.get(key, math.nan) for (a, r, _), row in sorted(results.items()) if a == arm and r == rule]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=list(BUDGETS), default="default")
    parser.add_argument("--steps", type=int, help="optimizer steps per arm")
    parser.add_argument("--size", type=int, help="side of the synthetic images")
    parser.add_argument("--crop", type=int, help="training crop")
    parser.add_argument("--n", type=int, help="synthetic images per split and dataset")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--m", type=int, default=32, help="DSSPN neuron width")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a DSSPN keyword for every DSSPN arm (repeatable), e.g. weighting=pixel")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=[*ARMS, "all"])
    parser.add_argument("--save", type=Path, help="write every arm's figures to this JSON file as they come")
    parser.add_argument("--load", type=Path, nargs="*", default=[],
                        help="report these saved runs together with this one (arms run apart, same settings)")
    args = parser.parse_args()
    for key, value in BUDGETS[args.budget].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.dsspn = parse_overrides(args.sets)
    return args


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    tax = Taxonomy.load()
    subsets = Subsets(lane=lane_ids(), reverse=related_ids(tax, CS, MV, "finer-ambiguous", "overlap"),
                      shared={CS: related_ids(tax, CS, MV, "equal"), MV: related_ids(tax, MV, CS, "equal")},
                      nested={CS: nested_ids(tax, CS), MV: nested_ids(tax, MV)})
    arms = list(ARMS.values()) if "all" in args.arms else [ARMS[name] for name in args.arms]
    wall = time.perf_counter()
    where = f"{args.device}" + (f" {torch.get_num_threads()} threads" if args.device == "cpu" else "")
    print(f"universal vs single, DSSPN vs DeepLab: ResNet-18 from scratch, budget {args.budget}: {args.steps} steps "
          f"x batch {args.batch}, crop {args.crop}, lr {args.lr} (poly), synthetic {args.size}x{args.size}, {args.n} "
          f"images per split, seeds {' '.join(map(str, args.seeds))}, {where}; DSSPN m={args.m} {args.dsspn or ''}")
    for ds in (CS, MV):
        print(f"  shared {ds}: {len(subsets.shared[ds])} classes; nested: {names(ds, subsets.nested[ds])}")
    print(f"  lane ({MV}): {names(MV, subsets.lane)}\n  reverse ({CS}): {names(CS, subsets.reverse)}\n")

    results = load_results(args.load)
    arms += [ARMS[name] for name in sorted({a for a, _, _ in results} - {arm.name for arm in arms}, key=list(ARMS).index)]
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for ds in sorted({ds for arm in arms for ds in arm.datasets}):
                synthesize(ds, root / ds, n=args.n, size=args.size, seed=seed)
            for arm in arms:
                if any(key[0] == arm.name and key[2] == seed for key in results):
                    continue  # loaded
                model = build(arm, args, seed)
                timing = train(model, arm, root, args, seed)
                for rule, row in score(model, arm, root, subsets, args).items():
                    results[(arm.name, rule, seed)] = {**row, **timing}
                    print(f"  seed {seed} {arm.name} {rule}: " + ", ".join(
                        f"{k} {100 * v:.1f}" for k, v in row.items() if not math.isnan(v) and "/" not in k), flush=True)
                if args.save is not None:
                    save_results(args.save, results)
    report(results, arms)
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


def save_results(path: Path, results: dict[tuple[str, str, int], dict[str, float]]) -> None:
    rows = [{"arm": arm, "rule": rule, "seed": seed, **row} for (arm, rule, seed), row in sorted(results.items())]
    path.write_text(json.dumps(rows, indent=1, allow_nan=True))


def load_results(paths: list[Path]) -> dict[tuple[str, str, int], dict[str, float]]:
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    for path in paths:
        for row in json.loads(path.read_text()):
            key = (row.pop("arm"), row.pop("rule"), row.pop("seed"))
            results[key] = {k: float(v) for k, v in row.items()}
    return results


def names(dataset: str, ids: tuple[int, ...]) -> str:
    by_id = {label.id: label.name for label in load_spec(dataset).labels}
    return ", ".join(f"{by_id[i]} ({i})" for i in ids) or "-"


def report(results: dict[tuple[str, str, int], dict[str, float]], arms: list[Arm]) -> None:
    columns = [("CS", CS), ("MV", MV), ("shared CS", f"shared {CS}"), ("shared MV", f"shared {MV}"),
               ("lane", "lane"), ("reverse", "reverse")]
    rows = sorted({(a, r) for a, r, _ in results}, key=lambda ar: ([x.name for x in arms].index(ar[0]), ar[1]))
    print(f"\n{'arm':<20} {'rule':<7}" + "".join(f"{title:>12}" for title, _ in columns)
          + f"{'train s':>9}{'img/s':>8}{'peak GiB':>9}")
    for arm, rule in rows:
        line = f"{arm:<20} {rule:<7}" + "".join(f"{fmt(collect(results, arm, rule, key)):>12}" for _, key in columns)
        timing = [statistics.fmean(collect(results, arm, rule, k)) for k in ("seconds", "images/s", "peak GiB")]
        print(line + f"{timing[0]:>9.0f}{timing[1]:>8.1f}" + (f"{timing[2]:>9.2f}" if not math.isnan(timing[2])
                                                                else f"{'-':>9}"))
    per_class = sorted({k for row in results.values() for k in row if ":" in k})
    if per_class:
        print("\nper-class IoU (nested and lane labels)")
        for arm, rule in rows:
            parts = [f"{k} {fmt(collect(results, arm, rule, k))}" for k in per_class
                     if any(not math.isnan(v) for v in collect(results, arm, rule, k))]
            if parts:
                print(f"  {arm} {rule}: " + ", ".join(parts))
    tree_report(results, rows)
    aims(results)


def tree_figures(report: EvalReport) -> dict[str, float]:
    """``DATASET mIoU_level/d`` for every level and ``DATASET severity/mean|within_parent`` (issue 22)."""
    return {f"{report.dataset} {k}": v for k, v in report.scalars().items() if k.startswith(("mIoU_level/", "severity/"))}


def tree_report(results: dict[tuple[str, str, int], dict[str, float]], rows: list[tuple[str, str]]) -> None:
    """mIoU at each level of the tree and the mistakes' severity, per dataset (issue 22)."""
    keys = sorted({k.split(" ", 1)[1] for row in results.values() for k in row if " mIoU_level/" in k},
                  key=lambda k: int(k.rsplit("/", 1)[1]))
    if not keys:
        return
    keys += ["severity/mean", "severity/within_parent"]
    titles = [k.replace("mIoU_level/", "L").replace("severity/mean", "sev").replace("severity/within_parent", "parent")
              for k in keys]
    print("\nmIoU at each level of the tree (L1 .. deepest = flat mIoU), mistake severity (sev: mean levels from the "
          "true concept to the LCA, over wrong pixels; parent: % of wrong pixels inside the true parent's subtree)")
    for ds, short in ((CS, "CS"), (MV, "MV")):
        print(f"{short:<20} {'rule':<7}" + "".join(f"{t:>10}" for t in titles))
        for arm, rule in rows:
            cells = []
            for key in keys:
                values = collect(results, arm, rule, f"{ds} {key}")
                if key == "severity/mean":
                    values = [v for v in values if not math.isnan(v)]
                    cells.append(f"{statistics.fmean(values):.2f}" if values else "-")
                else:
                    cells.append(fmt(values))
            if any(c != "-" for c in cells):
                print(f"{arm:<20} {rule:<7}" + "".join(f"{c:>10}" for c in cells))


def aims(results: dict[tuple[str, str, int], dict[str, float]]) -> None:
    def mean(arm: str, rule: str, key: str) -> float:
        values = [v for v in collect(results, arm, rule, key) if not math.isnan(v)]
        return statistics.fmean(values) if values else math.nan

    print("\naims (mean over seeds, points)")
    for rule in RULES:
        for ds in (CS, MV):
            gap = mean("dsspn-universal", rule, ds) - mean("deeplab-universal", "-", ds)
            if not math.isnan(gap):
                print(f"  dsspn-universal ({rule}) - deeplab-universal, {ds} mIoU: {100 * gap:+.1f} "
                      f"(aim >= -1.0: {'met' if gap >= -0.01 else 'missed'})")
    for family, rule in (("dsspn", "path"), ("dsspn", "greedy"), ("deeplab", "-")):
        for ds in (CS, MV):
            gap = mean(f"{family}-universal", rule, f"shared {ds}") - mean(f"{family}-{ds}", rule, f"shared {ds}")
            if not math.isnan(gap):
                print(f"  {family} ({rule}) universal - single-{ds}, shared classes: {100 * gap:+.1f} "
                      f"(aim >= 0: {'met' if gap >= 0 else 'missed'})")
    nested = sorted({(arm, rule, key) for (arm, rule, _), row in results.items() for key in row
                     if arm.startswith("dsspn") and ":" in key and not key.startswith(f"{MV}:{LANE_PREFIX}")})
    for arm, rule, key in nested:
        value = mean(arm, rule, key)
        if not math.isnan(value):
            print(f"  {arm} ({rule}) {key} IoU {100 * value:.1f} (aim > 0: {'met' if value > 0 else 'missed'})")


if __name__ == "__main__":
    main()
