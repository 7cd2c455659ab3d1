"""Universal against single-dataset training, and DSSPN against the flat DeepLab head, on synthetic Cityscapes and
Mapillary: the same budget for every arm, several seeds (issues 7, 12 and 24).

    python bench/universal_bench.py [--budget default|large] [--seeds 0 1] [--arms ... | all]
                                    [--set classifier=softmax ...] [--lr LR] [--m M] [--steps N --size S ...]
                                    [--eval-every N] [--finetune-steps N] [--save RUN.json] [--load RUN.json ...]
                                    [--plot CURVES.png]

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
labels above zero.

Every row is saved with the settings it was trained with (``--save``); a row whose settings differ from the
defaults (300 steps, lr 0.02, ``m`` 32, DSSPN's defaults: softmax since hierseg 0.3, so rows saved earlier without
a ``classifier`` are ``[classifier=sigmoid]``) is a *variant*, labelled by the difference
(``dsspn-universal [lr=0.04]``), reported beside the default rows and against them seed by seed; so runs with
different settings can be saved apart and reported together (``--load A.json B.json``, without ``--arms``: report
only). ``--eval-every N`` records a learning curve (the val figures every N steps, with the model's own inference
rule; evaluation leaves the random generators as it found them, so the run trains exactly as without it);
``--plot`` draws the curves of every run with one, and the DSSPN - DeepLab gap, to a PNG.

The ``*-ft`` arms are the paper's universal protocol (4.3: 60 epochs on every dataset, then 20 at a tenth of the
rate on each): joint training for all but ``--finetune-steps`` steps (default a quarter), then a copy of the model
per dataset fine-tuned on that dataset alone at a tenth of the rate, each scored on its dataset. Each fine-tuned
model has taken ``--steps`` steps in all, as a single-dataset arm has: compare ``dsspn-universal-ft`` with
``dsspn-cityscapes`` and ``dsspn-mapillary``.

``--budget large`` (for a GPU) trains longer on larger images; ``--device cuda`` runs there and reports images per
second and peak memory.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before torch starts OpenMP: on a shared, oversubscribed CPU, threads that spin while waiting burnt ten times the
# CPU of a training step (10.1 against 1.4 CPU-s for a DSSPN-ResNet-18 step at load 14, 2 threads); sleeping
# threads change no figure.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from hierseg.core.yamltext import parse_overrides  # noqa: E402
from hierseg.data.layouts import resolve_split  # noqa: E402
from hierseg.data.loader import multi_dataset_loader  # noqa: E402
from hierseg.data.readers import official  # noqa: E402
from hierseg.data.synth import synthesize  # noqa: E402
from hierseg.data.transforms import TrainTransform  # noqa: E402
from hierseg.engine.checkpoint import restore_rng_state, rng_state  # noqa: E402
from hierseg.engine.evaluate import InferenceOptions, evaluate  # noqa: E402
from hierseg.evaluation.report import EvalReport  # noqa: E402
from hierseg.models import create_model  # noqa: E402
from hierseg.taxonomy import Taxonomy, load_spec, translation  # noqa: E402

CS, MV = "cityscapes", "mapillary"
SHORT = {CS: "CS", MV: "MV"}
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
    finetune: bool = False  # the paper's universal protocol: joint training, then a fine-tuned copy per dataset


ARMS = {arm.name: arm for arm in (
    Arm("dsspn-universal", "dsspn_resnet18", (CS, MV)),
    Arm("dsspn-cityscapes", "dsspn_resnet18", (CS,)),
    Arm("dsspn-mapillary", "dsspn_resnet18", (MV,)),
    Arm("deeplab-universal", "deeplab_resnet18", (CS, MV)),
    Arm("deeplab-cityscapes", "deeplab_resnet18", (CS,)),
    Arm("deeplab-mapillary", "deeplab_resnet18", (MV,)),
    Arm("dsspn-universal-ft", "dsspn_resnet18", (CS, MV), finetune=True),
    Arm("deeplab-universal-ft", "deeplab_resnet18", (CS, MV), finetune=True),
)}
DEFAULT_ARMS = [name for name, arm in ARMS.items() if not arm.finetune]
# The settings a row was trained with, and the defaults its variant label is relative to. Rows saved before the
# settings were stored (issue 12's runs) had exactly these.
DSSPN_DEFAULTS = {"classifier": "softmax"}  # DSSPN's since hierseg 0.3; rows that name no classifier were sigmoid
DEFAULTS = {**BUDGETS["default"], "lr": 0.02, "m": 32, "dsspn": DSSPN_DEFAULTS}
FINETUNE_LR_FACTOR = 0.1  # the paper's: the rate divided by 10 for the per-dataset fine-tuning


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


def settings(arm: Arm, args: argparse.Namespace) -> dict[str, Any]:
    """What an arm's figures depend on besides the seed (stored with them, and named in the variant label)."""
    out = {key: getattr(args, key) for key in ("steps", "size", "crop", "n", "batch", "lr")}
    if arm.model.startswith("dsspn"):
        out.update(m=args.m, dsspn={**DSSPN_DEFAULTS, **args.dsspn})
    if arm.finetune:
        out.update(finetune_steps=finetune_steps(args), finetune_lr_factor=FINETUNE_LR_FACTOR)
    return out


def finetune_steps(args: argparse.Namespace) -> int:
    """The paper's split: 60 epochs joint, 20 fine-tuning (a quarter of every fine-tuned model's steps)."""
    return args.finetune_steps if args.finetune_steps is not None else args.steps // 4


def variant(values: dict[str, Any]) -> str:
    """The settings that differ from :data:`DEFAULTS`, ``""`` when none does (fine-tuning's own: when they differ
    from the paper's split)."""
    parts = [f"{k}={v}" for k, v in values.items() if k in DEFAULTS and k != "dsspn" and v != DEFAULTS[k]]
    parts += [f"{k}={v}" for k, v in sorted(values.get("dsspn", {}).items()) if DSSPN_DEFAULTS.get(k) != v]
    if "finetune_steps" in values and (values["finetune_steps"] != values["steps"] // 4
                                       or values["finetune_lr_factor"] != FINETUNE_LR_FACTOR):
        parts += [f"finetune={values['finetune_steps']}x{values['finetune_lr_factor']}"]
    return ",".join(parts)


def flat_variant(var: str) -> str:
    """The variant a DeepLab row of the same run would have: without DSSPN's own settings (``m``, ``--set``), so
    that a DSSPN variant is compared with the DeepLab trained at the same steps, sizes and rate."""
    shared = {k for k in DEFAULTS if k not in ("m", "dsspn")} | {"finetune"}
    return ",".join(part for part in var.split(",") if part and part.split("=", 1)[0] in shared)


def label(arm: str, var: str) -> str:
    return f"{arm} [{var}]" if var else arm


def build(arm: Arm, args: argparse.Namespace, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # every arm of a family starts from the same weights
    if arm.model.startswith("dsspn"):
        return create_model(arm.model, m=args.m, **{**DSSPN_DEFAULTS, **args.dsspn})
    return create_model(arm.model, datasets=arm.datasets)


Probe = Callable[[int], None]  # called after the given number of steps (learning curves)


def train(model: torch.nn.Module, datasets: tuple[str, ...], name: str, root: Path, args: argparse.Namespace,
          seed: int, steps: int, lr: float, probe: Probe | None = None) -> dict[str, float]:
    """``steps`` SGD steps on batches of ``datasets`` from ``lr`` (poly); returns seconds, images/s and peak memory
    (the time ``probe`` takes, after every ``args.eval_every`` steps, left out)."""
    data = [official(ds, root / ds, resolve_split(ds, "train"), seed=seed,
                     transform=TrainTransform(crop=args.crop, ignore=load_spec(ds).ignore)) for ds in datasets]
    loader, sampler = multi_dataset_loader(data, args.batch, seed=seed, workers=args.workers)
    device = torch.device(args.device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step, epoch, start, probing = 0, 0, time.perf_counter(), 0.0
    while step < steps:
        sampler.set_epoch(epoch)
        for d in data:
            d.set_epoch(epoch)
        for batch in loader:
            if step >= steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = lr * (1 - step / steps) ** 0.9
            image, label = batch["image"].to(device), batch["label"].to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
                loss = model(image, label, batch["dataset"])["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step % max(1, steps // 5) == 0:
                print(f"  {name}: step {step}/{steps} loss {loss.item():.3f} "
                      f"({time.perf_counter() - start - probing:.0f} s)", flush=True)
            if probe is not None and args.eval_every and step % args.eval_every == 0 and step < steps:
                began = time.perf_counter()
                rng = rng_state()  # evaluation must not move the generators training draws from
                probe(step)
                restore_rng_state(rng)
                model.train()
                probing += time.perf_counter() - began
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start - probing
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan
    return {"seconds": seconds, "images/s": steps * args.batch / seconds, "peak GiB": peak}


@dataclass(frozen=True)
class Subsets:
    lane: tuple[int, ...]
    reverse: tuple[int, ...]
    shared: dict[str, tuple[int, ...]]
    nested: dict[str, tuple[int, ...]]


def score_one(model: torch.nn.Module, datasets: tuple[str, ...], root: Path, subsets: Subsets,
              args: argparse.Namespace) -> dict[str, float]:
    """The figures of ``datasets`` with the model's current inference rule."""
    row: dict[str, float] = {}
    for ds in datasets:
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
    return row


def score(model: torch.nn.Module, datasets: tuple[str, ...], root: Path, subsets: Subsets,
          args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """One row of figures per inference rule (one row, ``-``, for a flat model); the model's rule is kept."""
    if not hasattr(model, "inference"):
        return {"-": score_one(model, datasets, root, subsets, args)}
    trained, rows = model.inference, {}
    for rule in RULES:
        model.inference = rule
        rows[rule] = score_one(model, datasets, root, subsets, args)
    model.inference = trained
    return rows


def run_arm(arm: Arm, root: Path, subsets: Subsets, args: argparse.Namespace, seed: int) -> dict[str, dict[str, Any]]:
    """Train and score one arm; ``{rule: row}``. A fine-tuning arm trains jointly for all but
    :func:`finetune_steps` steps, then a copy per dataset on that dataset alone at a tenth of the rate (a fresh poly
    schedule), so each fine-tuned model has taken ``args.steps`` steps, as a single-dataset arm has."""
    model = build(arm, args, seed)
    if not arm.finetune:
        curve: list[dict[str, float]] = []

        def probe(step: int) -> None:
            point = {"step": step, **score_one(model, arm.datasets, root, subsets, args)}
            curve.append(point)
            print(f"  {arm.name} step {step}: " + ", ".join(f"{ds} {100 * point[ds]:.1f}" for ds in arm.datasets),
                  flush=True)

        timing = train(model, arm.datasets, arm.name, root, args, seed, args.steps, args.lr, probe)
        rows = score(model, arm.datasets, root, subsets, args)
        if args.eval_every:  # the last point is the final score with the model's own rule
            own = rows[getattr(model, "inference", "-")]
            own["curve"] = [*curve, {"step": args.steps, **own}]
        return {rule: {**row, **timing} for rule, row in rows.items()}
    tuning = finetune_steps(args)
    timing = train(model, arm.datasets, f"{arm.name} (joint)", root, args, seed, args.steps - tuning, args.lr)
    rows: dict[str, dict[str, Any]] = {}
    for ds in arm.datasets:
        tuned = copy.deepcopy(model)
        spent = train(tuned, (ds,), f"{arm.name} ({ds})", root, args, seed, tuning, args.lr * FINETUNE_LR_FACTOR)
        timing["seconds"] += spent["seconds"]
        for rule, row in score(tuned, (ds,), root, subsets, args).items():
            rows.setdefault(rule, {}).update(row)
    images = (args.steps - tuning + tuning * len(arm.datasets)) * args.batch
    timing["images/s"] = images / timing["seconds"]
    return {rule: {**row, **timing} for rule, row in rows.items()}


def fmt(values: list[float], signed: bool = False) -> str:
    """Mean over seeds and half the range, in points; ``-`` when nothing was measured."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    mean = 100 * statistics.fmean(values)
    spread = 50 * (max(values) - min(values))
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return f"{text}±{spread:.1f}" if len(values) > 1 else text


Key = tuple[str, str, str, int]  # arm, variant, rule, seed
Results = dict[Key, dict[str, Any]]


def collect(results: Results, arm: str, var: str, rule: str, key: str) -> list[float]:
    return [row.get(key, math.nan) for (a, v, r, _), row in sorted(results.items()) if (a, v, r) == (arm, var, rule)]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=list(BUDGETS), default="default")
    parser.add_argument("--steps", type=int, help="optimizer steps per arm")
    parser.add_argument("--size", type=int, help="side of the synthetic images")
    parser.add_argument("--crop", type=int, help="training crop")
    parser.add_argument("--n", type=int, help="synthetic images per split and dataset")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--m", type=int, default=DEFAULTS["m"], help="DSSPN neuron width")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a DSSPN keyword for every DSSPN arm (repeatable), e.g. weighting=pixel")
    parser.add_argument("--finetune-steps", type=int,
                        help="fine-tuning steps of the *-ft arms (default: a quarter of --steps, the paper's split)")
    parser.add_argument("--eval-every", type=int, default=0, metavar="N",
                        help="learning curves: score the val splits every N steps (not the *-ft arms)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arms", nargs="+", choices=[*ARMS, "all"],
                        help=f"default: {' '.join(DEFAULT_ARMS)}; none with --load (report only); all: every arm")
    parser.add_argument("--save", type=Path, help="write every arm's figures to this JSON file as they come")
    parser.add_argument("--load", type=Path, nargs="*", default=[],
                        help="report these saved runs together with this one (each row keeps its settings)")
    parser.add_argument("--plot", type=Path, help="draw the learning curves of the runs to this PNG")
    args = parser.parse_args()
    for key, value in BUDGETS[args.budget].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.dsspn = parse_overrides(args.sets)
    if args.arms is None:
        args.arms = [] if args.load else DEFAULT_ARMS
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
    results = load_results(args.load)
    if arms:
        print(f"universal vs single, DSSPN vs DeepLab: ResNet-18 from scratch, budget {args.budget}: {args.steps} "
              f"steps x batch {args.batch}, crop {args.crop}, lr {args.lr} (poly), synthetic {args.size}x{args.size}, "
              f"{args.n} images per split, seeds {' '.join(map(str, args.seeds))}, {where}; DSSPN m={args.m} "
              f"{args.dsspn or ''}" + (f"; fine-tuning {finetune_steps(args)} steps at lr x {FINETUNE_LR_FACTOR}"
                                       if any(a.finetune for a in arms) else "")
              + (f"; validation every {args.eval_every} steps" if args.eval_every else ""))
        for ds in (CS, MV):
            print(f"  shared {ds}: {len(subsets.shared[ds])} classes; nested: {names(ds, subsets.nested[ds])}")
        print(f"  lane ({MV}): {names(MV, subsets.lane)}\n  reverse ({CS}): {names(CS, subsets.reverse)}\n")
    for seed in args.seeds if arms else []:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for ds in sorted({ds for arm in arms for ds in arm.datasets}):
                synthesize(ds, root / ds, n=args.n, size=args.size, seed=seed)
            for arm in arms:
                values = settings(arm, args)
                var = variant(values)
                if any(key[:2] == (arm.name, var) and key[3] == seed for key in results):
                    continue  # loaded
                for rule, row in run_arm(arm, root, subsets, args, seed).items():
                    results[(arm.name, var, rule, seed)] = {**row, "settings": values}
                    print(f"  seed {seed} {label(arm.name, var)} {rule}: " + ", ".join(
                        f"{k} {100 * v:.1f}" for k, v in row.items() if isinstance(v, float) and not math.isnan(v)
                        and "/" not in k and k not in ("seconds", "images/s", "peak GiB")), flush=True)
                if args.save is not None:
                    save_results(args.save, results)
    report(results)
    if args.plot is not None:
        print(f"\nwrote {plot_curves(results, args.plot)}")
    print(f"\nwall time {time.perf_counter() - wall:.0f} s")


def save_results(path: Path, results: Results) -> None:
    rows = [{"arm": arm, "rule": rule, "seed": seed, **row} for (arm, _, rule, seed), row in sorted(results.items())]
    path.write_text(json.dumps(rows, indent=1, allow_nan=True))


def load_results(paths: list[Path]) -> Results:
    results: Results = {}
    for path in paths:
        for row in json.loads(path.read_text()):
            arm, rule, seed = row.pop("arm"), row.pop("rule"), row.pop("seed")
            values = row.pop("settings", None)
            if values is None:  # saved before settings were: the defaults of the time
                values = settings(ARMS[arm], argparse.Namespace(**DEFAULTS, finetune_steps=None))
                values["dsspn"] = {}
            if "dsspn" in values and "classifier" not in values["dsspn"]:  # saved by hierseg 0.2: sigmoid
                values["dsspn"] = {**values["dsspn"], "classifier": "sigmoid"}
            curve = row.pop("curve", None)
            row = {k: float(v) for k, v in row.items()}
            if curve is not None:
                row["curve"] = curve
            results[(arm, variant(values), rule, seed)] = {**row, "settings": values}
    return results


def names(dataset: str, ids: tuple[int, ...]) -> str:
    by_id = {label.id: label.name for label in load_spec(dataset).labels}
    return ", ".join(f"{by_id[i]} ({i})" for i in ids) or "-"


def report(results: Results) -> None:
    columns = [("CS", CS), ("MV", MV), ("shared CS", f"shared {CS}"), ("shared MV", f"shared {MV}"),
               ("lane", "lane"), ("reverse", "reverse")]
    order = list(ARMS)
    rows = sorted({(a, v, r) for a, v, r, _ in results}, key=lambda avr: (avr[1], order.index(avr[0]), avr[2]))
    width = max([20, *(len(label(a, v)) for a, v, _ in rows)])
    print(f"\n{'arm':<{width}} {'rule':<7}" + "".join(f"{title:>12}" for title, _ in columns)
          + f"{'train s':>9}{'img/s':>8}{'peak GiB':>9}{'seeds':>7}")
    for arm, var, rule in rows:
        line = f"{label(arm, var):<{width}} {rule:<7}" + "".join(
            f"{fmt(collect(results, arm, var, rule, key)):>12}" for _, key in columns)
        timing = [statistics.fmean(collect(results, arm, var, rule, k)) for k in ("seconds", "images/s", "peak GiB")]
        seeds = ",".join(str(s) for a, v, r, s in sorted(results) if (a, v, r) == (arm, var, rule))
        print(line + f"{timing[0]:>9.0f}{timing[1]:>8.1f}" + (f"{timing[2]:>9.2f}" if not math.isnan(timing[2])
                                                                else f"{'-':>9}") + f"{seeds:>7}")
    per_class = sorted({k for row in results.values() for k in row if ":" in k})
    if per_class:
        print("\nper-class IoU (nested and lane labels)")
        for arm, var, rule in rows:
            parts = [f"{k} {fmt(collect(results, arm, var, rule, k))}" for k in per_class
                     if any(not math.isnan(v) for v in collect(results, arm, var, rule, k))]
            if parts:
                print(f"  {label(arm, var)} {rule}: " + ", ".join(parts))
    tree_report(results, rows)
    for var in sorted({v for _, v, _, _ in results}):
        aims(results, var)
    ablations(results)
    curves(results)


def tree_figures(report: EvalReport) -> dict[str, float]:
    """``DATASET mIoU_level/d`` for every level and ``DATASET severity/mean|within_parent`` (issue 22)."""
    return {f"{report.dataset} {k}": v for k, v in report.scalars().items() if k.startswith(("mIoU_level/", "severity/"))}


def tree_report(results: Results, rows: list[tuple[str, str, str]]) -> None:
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
        for arm, var, rule in rows:
            cells = []
            for key in keys:
                values = collect(results, arm, var, rule, f"{ds} {key}")
                if key == "severity/mean":
                    values = [v for v in values if not math.isnan(v)]
                    cells.append(f"{statistics.fmean(values):.2f}" if values else "-")
                else:
                    cells.append(fmt(values))
            if any(c != "-" for c in cells):
                print(f"{label(arm, var):<20} {rule:<7}" + "".join(f"{c:>10}" for c in cells))


def mean_of(results: Results, arm: str, var: str, rule: str, key: str) -> float:
    values = [v for v in collect(results, arm, var, rule, key) if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def aims(results: Results, var: str) -> None:
    def mean(arm: str, rule: str, key: str) -> float:
        return mean_of(results, arm, var, rule, key)

    lines = []
    for rule in RULES:
        for ds in (CS, MV):
            gap = mean("dsspn-universal", rule, ds) - mean_of(results, "deeplab-universal", flat_variant(var), "-", ds)
            if not math.isnan(gap):
                lines.append(f"  dsspn-universal ({rule}) - {label('deeplab-universal', flat_variant(var))}, {ds} mIoU: "
                             f"{100 * gap:+.1f} "
                             f"(aim >= -1.0: {'met' if gap >= -0.01 else 'missed'})")
    for family, rule in (("dsspn", "path"), ("dsspn", "greedy"), ("deeplab", "-")):
        for joint in (f"{family}-universal", f"{family}-universal-ft"):
            for ds in (CS, MV):
                gap = mean(joint, rule, f"shared {ds}") - mean(f"{family}-{ds}", rule, f"shared {ds}")
                if not math.isnan(gap):
                    lines.append(f"  {family} ({rule}) {joint.removeprefix(family + '-')} - single-{ds}, shared "
                                 f"classes: {100 * gap:+.1f} (aim >= 0: {'met' if gap >= 0 else 'missed'})")
            if joint.endswith("-ft"):
                for ds in (CS, MV):
                    gap = mean(joint, rule, ds) - mean(f"{family}-{ds}", rule, ds)
                    if not math.isnan(gap):
                        lines.append(f"  {family} ({rule}) universal-ft - single-{ds}, {ds} mIoU: {100 * gap:+.1f}")
    nested = sorted({(arm, rule, key) for (arm, v, rule, _), row in results.items() for key in row
                     if v == var and arm.startswith("dsspn") and ":" in key
                     and not key.startswith(f"{MV}:{LANE_PREFIX}")})
    for arm, rule, key in nested:
        value = mean(arm, rule, key)
        if not math.isnan(value):
            lines.append(f"  {arm} ({rule}) {key} IoU {100 * value:.1f} (aim > 0: {'met' if value > 0 else 'missed'})")
    if lines:
        print(f"\naims (mean over seeds, points){f' [{var}]' if var else ''}")
        print("\n".join(lines))


def ablations(results: Results) -> None:
    """Each variant of an arm against every variant that differs from it in one setting, seed by seed (the seeds
    both have): ``[m=48,classifier=sigmoid]`` against ``[classifier=sigmoid]`` is the effect of m at sigmoid."""
    lines = []
    keys = {(a, v, r) for a, v, r, _ in results}
    for arm, var, rule in sorted(k for k in keys if k[1]):
        parts = var.split(",")
        for k, changed in enumerate(parts):
            other = ",".join(parts[:k] + parts[k + 1:])
            if (arm, other, rule) not in keys:
                continue
            base = {s: row for (a, v, r, s), row in results.items() if (a, v, r) == (arm, other, rule)}
            mine = {s: row for (a, v, r, s), row in results.items() if (a, v, r) == (arm, var, rule)}
            seeds = sorted(set(base) & set(mine))
            if not seeds:
                continue
            deltas = "; ".join(f"{ds} {' '.join(f'{100 * (mine[s][ds] - base[s][ds]):+.1f}' for s in seeds)}"
                               for ds in (CS, MV))
            lines.append(f"  {changed} ({label(arm, var)} - {label(arm, other)}, {rule}), seeds "
                         f"{','.join(map(str, seeds))}: {deltas}")
    if lines:
        print("\nvariants against the settings one change away (points, one figure per seed)")
        print("\n".join(lines))


def curve_table(results: Results) -> dict[tuple[str, str], dict[int, dict[str, list[float]]]]:
    """``{(arm, variant): {step: {figure: [value per seed]}}}`` of the runs with learning curves."""
    table: dict[tuple[str, str], dict[int, dict[str, list[float]]]] = {}
    for (arm, var, _, _), row in sorted(results.items()):
        for point in row.get("curve", ()):
            figures = table.setdefault((arm, var), {}).setdefault(int(point["step"]), {})
            for key, value in point.items():
                if key != "step":
                    figures.setdefault(key, []).append(float(value))
    return table


def curve_groups(table: dict[tuple[str, str], Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(variant, {arm: points})`` per variant of the runs with curves; a DSSPN variant is joined by the DeepLab
    curves of its :func:`flat_variant`, which then form no group of their own."""
    groups = {var: {a: table[(a, var)] for a in ARMS if (a, var) in table} for var in sorted({v for _, v in table})}
    joined = set()
    for var, arms in groups.items():
        flat = flat_variant(var)
        if flat != var and flat in groups and any(a.startswith("dsspn") for a in arms):
            for a, points in groups[flat].items():
                if a.startswith("deeplab") and a not in arms:
                    arms[a] = points
                    joined.add((a, flat))
    return [(var, arms) for var, arms in groups.items()
            if arms and not all((a, var) in joined for a in arms)]


def curves(results: Results) -> None:
    table = curve_table(results)
    if not table:
        return
    for var, group in curve_groups(table):
        arms = [a for a in ARMS if a in group]
        print(f"\nlearning curves{f' [{var}]' if var else ''}: val mIoU by step, mean over seeds (greedy for DSSPN)")
        print(f"{'step':>6}" + "".join(f"{f'{a} {SHORT[ds]}':>24}" for a in arms for ds in (CS, MV))
              + ("".join(f"{f'gap {SHORT[ds]}':>10}" for ds in (CS, MV))
                 if {"dsspn-universal", "deeplab-universal"} <= set(arms) else ""))
        steps = sorted({s for a in arms for s in group[a]})
        for step in steps:
            line = f"{step:>6}"
            means = {}
            for a in arms:
                for ds in (CS, MV):
                    values = group[a].get(step, {}).get(ds, [])
                    means[(a, ds)] = 100 * statistics.fmean(values) if values else math.nan
                    line += f"{fmt(values):>24}"
            if {"dsspn-universal", "deeplab-universal"} <= set(arms):
                for ds in (CS, MV):
                    line += f"{means[('dsspn-universal', ds)] - means[('deeplab-universal', ds)]:>+10.1f}"
            print(line)


def plot_curves(results: Results, path: Path) -> Path:
    """The learning curves (one panel per dataset, and the DSSPN - DeepLab gap) to a PNG."""
    from matplotlib.figure import Figure

    table = curve_table(results)
    if not table:
        raise SystemExit("no learning curves among the runs (train with --eval-every N, or --load such runs)")
    fig = Figure(figsize=(15, 4.6), dpi=100, layout="constrained")
    panels = fig.subplots(1, 3)
    colours = {"dsspn-universal": "tab:blue", "deeplab-universal": "tab:red", "dsspn-cityscapes": "tab:cyan",
               "dsspn-mapillary": "tab:cyan", "deeplab-cityscapes": "tab:orange", "deeplab-mapillary": "tab:orange"}
    styles = ["-", "--", ":", "-."]
    variants = sorted({v for _, v in table})
    for ax, ds in zip(panels[:2], (CS, MV), strict=True):
        for (arm, var), points in table.items():
            steps = [s for s in sorted(points) if ds in points[s]]
            if not steps:
                continue
            style = styles[variants.index(var) % len(styles)]
            seeds = len(points[steps[0]][ds])
            for k in range(seeds):
                ax.plot(steps, [100 * points[s][ds][k] for s in steps], color=colours.get(arm, "0.4"), alpha=0.35,
                        linewidth=0.9, linestyle=style)
            ax.plot(steps, [100 * statistics.fmean(points[s][ds]) for s in steps], color=colours.get(arm, "0.4"),
                    linewidth=2.2, linestyle=style, marker="o", markersize=3,
                    label=f"{label(arm, var)} (mean of {seeds} seeds)")
        ax.set_title(f"{ds}: val mIoU (%)")
        ax.set_xlabel("step")
        ax.grid(True, color="0.92")
        ax.legend(fontsize=8, loc="lower right")
    gap_ax = panels[2]
    for var, group in curve_groups(table):
        if "dsspn-universal" not in group or "deeplab-universal" not in group:
            continue
        ours, theirs = group["dsspn-universal"], group["deeplab-universal"]
        for ds, colour in ((CS, "tab:purple"), (MV, "tab:green")):
            steps = [s for s in sorted(ours) if s in theirs and ds in ours[s] and ds in theirs[s]]
            gaps = [100 * (statistics.fmean(ours[s][ds]) - statistics.fmean(theirs[s][ds])) for s in steps]
            gap_ax.plot(steps, gaps, color=colour, linewidth=2.2, marker="o", markersize=3,
                        linestyle=styles[variants.index(var) % len(styles)], label=label(ds, var))
    gap_ax.axhline(0, color="0.3", linewidth=1)
    gap_ax.axhline(-1, color="0.5", linewidth=1, linestyle="--", label="aim: -1")
    gap_ax.set_title("gap: DSSPN - DeepLab, universal (points)")
    gap_ax.set_xlabel("step")
    gap_ax.grid(True, color="0.92")
    gap_ax.legend(fontsize=8)
    fig.savefig(path, format="png")
    return path


if __name__ == "__main__":
    main()
