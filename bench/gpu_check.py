"""One command that checks hierseg on a CUDA GPU, ready before a GPU is lent (issue 24).

    python bench/gpu_check.py [--device cuda] [--out build/gpu_check]     # one GPU, under 8 minutes
    python bench/gpu_check.py --device cpu --quick                         # the same code paths, small, on the CPU

Sections, each timed and recorded whatever the others do (a failure is written down with its error, and the
command exits 1 at the end):

1. ``families``: every model family of the registry (``{family}_resnet101``; ResNet-18 with ``--quick``) trains a
   few SGD steps under bf16 autocast (``hierseg.engine.distributed.autocast``, as the trainer runs it), channels-last
   on CUDA, on synthetic Cityscapes crops: ms per step, peak memory, finite losses.
2. ``dynamic``: DSSPN's head step with dynamic batching (each neuron once per batch, on the images that activate it)
   against each image alone and against the fixed structure (``bench/dsspn_bench.py``'s step, at the paper's
   513-pixel crop: 65x65 root features, batch 8).
3. ``table6``: DSSPN-ResNet-101 against DeepLab-ResNet-101 on one 1024x2048 image (the paper's Table 6:
   parameters and test images/s), fp32 and bf16 autocast, with peak memory.
4. ``evaluate``: ``hierseg.engine.evaluate.evaluate`` of both models on the device over synthetic Cityscapes val,
   and the device's predictions against the CPU's on one image (the fraction of equal pixels).
5. ``ddp``: ``torchrun`` with one process per GPU (two on the CPU): the process group (nccl on CUDA, gloo on the
   CPU), one DDP step of universal DSSPN (a Cityscapes then a Mapillary batch: different sub-graphs, so
   ``find_unused_parameters``) with the parameters compared across ranks afterwards, then ``hierseg`` training
   itself under the same group: two steps with validation (sharded over the ranks, confusion matrices summed).

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` (one table) and prints the table. ``--quick`` shrinks every
size (64-pixel crops, ResNet-18, 64x128 "full" images) so that the test suite runs it on the CPU in seconds
(``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # dsspn_bench's head step

CS, MV = "cityscapes", "mapillary"
FULL = {False: (1024, 2048), True: (48, 96)}  # Table 6's image; --quick's
CROP = {False: 512, True: 32}
DEPTH = {False: "resnet101", True: "resnet18"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan


def synthetic(root: Path, quick: bool) -> Path:
    """Synthetic Cityscapes and Mapillary (train and val) at the crop size."""
    from hierseg.data.synth import synthesize

    for name in (CS, MV):
        synthesize(name, root / name, n=2 if quick else 8, size=CROP[quick] + (8 if quick else 64), seed=0)
    return root


def batch_of(root: Path, dataset: str, size: int, crop: int, seed: int = 0) -> dict[str, Any]:
    from hierseg.data.loader import collate
    from hierseg.data.readers import official
    from hierseg.data.transforms import TrainTransform
    from hierseg.engine.evaluate import resolve_split
    from hierseg.taxonomy import load_spec

    transform = TrainTransform(crop=crop, ignore=load_spec(dataset).ignore)
    data = official(dataset, root / dataset, resolve_split(dataset, "train"), seed=seed, transform=transform)
    return collate([data[i % len(data)] for i in range(size)])


def build(name: str, device: torch.device, datasets: tuple[str, ...] = (CS,)) -> torch.nn.Module:
    from hierseg.models import create_model

    torch.manual_seed(0)
    kwargs: dict[str, Any] = {} if name.startswith("dsspn") else {"datasets": list(datasets)}
    return create_model(name, **kwargs).to(device)


# ---------------------------------------------------------------------------------------------------- sections


def families(args: argparse.Namespace, device: torch.device, root: Path) -> dict[str, Any]:
    from hierseg.engine.distributed import autocast
    from hierseg.models import list_models
    from hierseg.models.registry import model_family

    depth = DEPTH[args.quick]
    names = sorted({model_family(n) for n in list_models()})
    batch = batch_of(root, CS, 2, CROP[args.quick])
    out = {}
    for family in names:
        model = build(f"{family}_{depth}", device).train()
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        image, label = batch["image"].to(device), batch["label"].to(device)
        if device.type == "cuda":
            image = image.contiguous(memory_format=torch.channels_last)
        reset_peak(device)
        losses, times = [], []
        for _ in range(args.steps):
            sync(device)
            start = time.perf_counter()
            with autocast(device, True):
                loss = model(image, label=label, dataset=CS)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sync(device)
            times.append(time.perf_counter() - start)
            losses.append(loss.item())
        out[family] = {"model": f"{family}_{depth}", "ms_per_step": 1000 * statistics.median(times[1:] or times),
                       "peak_gib": peak_gib(device), "losses": losses,
                       "ok": all(math.isfinite(v) for v in losses)}
        del model, optimizer
    out["ok"] = all(r["ok"] for r in out.values())
    return out


def dynamic(args: argparse.Namespace, device: torch.device, root: Path) -> dict[str, Any]:
    from dsspn_bench import labels, step

    from hierseg.models.dsspn import NeuronHead
    from hierseg.taxonomy import NeuronGraph, Taxonomy

    # as dsspn_bench: root features of 256 channels, synthetic label maps of 2 x label_size - 1 pixels
    batch, size, label_size = (2, 9, 17) if args.quick else (8, 65, 65)
    torch.manual_seed(0)
    head = NeuronHead(NeuronGraph(Taxonomy.load())).to(device)
    h0 = torch.rand(batch, 256, size, size, device=device, requires_grad=True)
    modes = ("dynamic", "per-image", "fixed")
    times: dict[str, list[float]] = {m: [] for m in modes}
    peaks: dict[str, list[int]] = {m: [] for m in modes}
    for ds in (CS,) if args.quick else (CS, MV):
        label = labels(ds, batch, label_size, 0).to(device)
        if not args.quick:
            step(head, h0, label, ds, "dynamic")  # warm-up
        for _ in range(1 if args.quick else 3):
            for mode in modes:  # interleaved
                seconds, _, cuda_peak = step(head, h0, label, ds, mode)
                times[mode].append(seconds)
                peaks[mode].append(cuda_peak)
    median = {m: statistics.median(times[m]) for m in modes}
    return {"batch": batch, "features": size, **{f"{m} ms": 1000 * median[m] for m in modes},
            "per-image / dynamic": median["per-image"] / median["dynamic"],
            "fixed / dynamic": median["fixed"] / median["dynamic"],
            **({f"{m} peak MiB": max(peaks[m]) / 2**20 for m in modes} if device.type == "cuda" else {}),
            "ok": all(math.isfinite(t) for t in median.values())}


def table6(args: argparse.Namespace, device: torch.device, root: Path) -> dict[str, Any]:
    from hierseg.engine.distributed import autocast
    from hierseg.models.layers import count_params

    height, width = FULL[args.quick]
    depth = DEPTH[args.quick]
    out: dict[str, Any] = {"image": f"{width}x{height}"}
    image = torch.randn(1, 3, height, width, device=device)
    for family in ("deeplab", "dsspn"):
        model = build(f"{family}_{depth}", device).eval()
        row: dict[str, Any] = {"params_M": count_params(model) / 1e6}
        for precision in ("fp32", "bf16"):
            reset_peak(device)
            with torch.inference_mode(), autocast(device, precision == "bf16"):
                if not args.quick:
                    model.predict(image, CS)  # warm-up (cudnn autotuning, lookup tables)
                sync(device)
                runs = 1 if args.quick else 5
                start = time.perf_counter()
                for _ in range(runs):
                    ids = model.predict(image, CS)
                sync(device)
            row[f"{precision} img/s"] = runs / (time.perf_counter() - start)
            row[f"{precision} peak GiB"] = peak_gib(device)
            row["shape_ok"] = tuple(ids.shape) == (1, height, width)
        out[f"{family}_{depth}"] = row
        del model
    dsspn, deeplab = out[f"dsspn_{depth}"], out[f"deeplab_{depth}"]
    out["dsspn / deeplab fp32 img/s"] = dsspn["fp32 img/s"] / deeplab["fp32 img/s"]
    out["paper: dsspn / deeplab img/s"] = 1.45 / 1.78
    out["ok"] = dsspn["shape_ok"] and deeplab["shape_ok"]
    return out


def evaluation(args: argparse.Namespace, device: torch.device, root: Path) -> dict[str, Any]:
    from hierseg.engine.evaluate import evaluate

    out: dict[str, Any] = {}
    for family in ("deeplab", "dsspn"):
        model = build(f"{family}_{DEPTH[args.quick]}", device)
        report = evaluate(model, CS, root / CS, "val", device=device)
        image = batch_of(root, CS, 1, CROP[args.quick])["image"]
        model.eval()
        tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32 against fp32
        try:
            with torch.inference_mode():
                here = model.predict(image.to(device), CS).cpu()
                model.to("cpu")
                cpu = model.predict(image, CS)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        out[family] = {"images": report.images, "img/s": report.images / report.seconds, "miou": report.miou,
                       "same_as_cpu": float((here == cpu).float().mean())}
        del model
    out["ok"] = all(out[f]["images"] > 0 and out[f]["same_as_cpu"] > 0.99 for f in ("deeplab", "dsspn"))
    return out


def ddp(args: argparse.Namespace, device: torch.device, root: Path) -> dict[str, Any]:
    processes = torch.cuda.device_count() if device.type == "cuda" else 2
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "ddp.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   __file__, "--ddp-worker", "--device", device.type, "--data", str(root), "--out", str(report)]
        if args.quick:
            command.append("--quick")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run(command, capture_output=True, text=True, timeout=args.ddp_timeout, env=env)
        if result.returncode != 0 or not report.is_file():
            # the workers' own last lines ([rankN]: ...), not torchrun's summary of them
            lines = [line for line in (result.stderr + result.stdout).splitlines() if line.startswith("[rank")]
            tail = "\n".join(lines[-6:]) or result.stderr[-2000:]
            raise RuntimeError(f"torchrun exited {result.returncode}:\n{tail}")
        return json.loads(report.read_text())


# ---------------------------------------------------------------------------------------------------- DDP worker


def ddp_worker(args: argparse.Namespace) -> None:
    """One process of the ``ddp`` section, under torchrun."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from hierseg.engine import distributed
    from hierseg.engine.config import parse_config
    from hierseg.engine.train import train

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    # the group is made here even for one process, so the collectives below and the trainer's run over NCCL
    dist.init_process_group(backend, rank=rank, world_size=world, device_id=device if device.type == "cuda" else None)
    root = Path(args.data)
    result: dict[str, Any] = {"backend": dist.get_backend(), "world_size": world}
    try:
        model = build(f"dsspn_{DEPTH[args.quick]}", device).train()
        wrapped = DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None,
                                          find_unused_parameters=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        losses = []
        start = time.perf_counter()
        for dataset in (CS, MV):  # one dataset per batch, each rank its own images
            batch = batch_of(root, dataset, 2, CROP[args.quick], seed=rank)
            with distributed.autocast(device, True):
                loss = wrapped(batch["image"].to(device), label=batch["label"].to(device), dataset=dataset)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        sync(device)
        result["ddp_step_s"] = time.perf_counter() - start
        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().item()
        totals = distributed.all_gather_object(total)
        result["losses_rank0"] = losses
        result["params_in_sync"] = len(set(totals)) == 1
        del wrapped, model, optimizer

        out = Path(args.out).parent / "run"
        raw = {"model": {"name": "dsspn_resnet18"},
               "data": {"workers": 0, "datasets": [{"name": name, "root": str(root / name), "crop": CROP[True],
                                                    "batch_size": 2} for name in (CS, MV)]},
               "schedule": {"steps": 2}, "eval": {"every": 2, "limit": 1, "best": "mean/mIoU"},
               "run": {"device": device.type}, "output": {"dir": str(out), "log_every": 1, "checkpoint_every": 0}}
        start = time.perf_counter()
        outputs = train(parse_config(raw))
        result["train_s"] = time.perf_counter() - start
        if rank == 0:
            from hierseg.engine.logs import read_metrics

            records = read_metrics(out)
            result["train_steps"] = len(records)
            result["train_val_mean_miou"] = records[-1].get("eval", {}).get("mean/mIoU", math.nan)
            result["train_outputs"] = sorted(p.name for p in out.iterdir())
            result["ok"] = (result["params_in_sync"] and all(math.isfinite(v) for v in losses) and len(records) == 2
                            and outputs["main"].is_file() and (out / "best.pt").is_file())
            Path(args.out).write_text(json.dumps(result, indent=1))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------- report


SECTIONS: dict[str, Callable[[argparse.Namespace, torch.device, Path], dict[str, Any]]] = {
    "families": families, "dynamic": dynamic, "table6": table6, "evaluate": evaluation, "ddp": ddp}


def summary(name: str, result: dict[str, Any]) -> str:
    """The table's figure column for one section."""
    if "error" in result:
        return f"**failed**: {result['error'].splitlines()[-1][:160]}"
    if name == "families":
        return "; ".join(f"{f} {r['ms_per_step']:.0f} ms/step, {r['peak_gib']:.2f} GiB" for f, r in result.items()
                         if isinstance(r, dict))
    if name == "dynamic":
        return (f"dynamic {result['dynamic ms']:.1f} ms, per-image {result['per-image / dynamic']:.2f}x, fixed "
                f"{result['fixed / dynamic']:.2f}x its time (batch {result['batch']}, {result['features']}^2 features)")
    if name == "table6":
        rows = [(k, v) for k, v in result.items() if isinstance(v, dict)]
        parts = [f"{k}: {v['params_M']:.1f}M params, {v['fp32 img/s']:.2f} img/s fp32 ({v['fp32 peak GiB']:.2f} GiB), "
                 f"{v['bf16 img/s']:.2f} bf16 ({v['bf16 peak GiB']:.2f} GiB)" for k, v in rows]
        ratio, paper = result["dsspn / deeplab fp32 img/s"], result["paper: dsspn / deeplab img/s"]
        return f"{result['image']}: " + "; ".join(parts) + f"; DSSPN/DeepLab speed {ratio:.2f} (paper {paper:.2f})"
    if name == "evaluate":
        return "; ".join(f"{f} {result[f]['images']} images at {result[f]['img/s']:.1f} img/s, equal to CPU on "
                         f"{100 * result[f]['same_as_cpu']:.2f} % of pixels" for f in ("deeplab", "dsspn"))
    if name == "ddp":
        return (f"{result['backend']} x {result['world_size']}: DDP step {result['ddp_step_s']:.1f} s, parameters "
                f"{'in sync' if result['params_in_sync'] else 'DIFFER'}; hierseg train {result['train_steps']} steps "
                f"+ validation in {result['train_s']:.1f} s")
    return json.dumps(result)


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [f"`python bench/gpu_check.py {' '.join(report['argv'])}` on {env['device_name']} (torch {env['torch']}, "
             f"CUDA {env['cuda']}), {report['seconds']:.0f} s in all", "",
             "| check | ok | seconds | figures |", "|---|---|---|---|"]
    for name in SECTIONS:
        result = report["sections"].get(name, {"error": "not run"})
        ok = "yes" if result.get("ok") else "**no**"
        lines.append(f"| {name} | {ok} | {result.get('seconds', math.nan):.1f} | {summary(name, result)} |")
    return "\n".join(lines) + "\n"


def environment(device: torch.device) -> dict[str, Any]:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
           f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"}
    if device.type == "cuda":
        env.update(capability=".".join(map(str, torch.cuda.get_device_capability(device))),
                   bf16=torch.cuda.is_bf16_supported(), memory_gib=torch.cuda.get_device_properties(device).total_memory
                   / 2**30, gpus=torch.cuda.device_count())
    return env


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (the CPU test)")
    parser.add_argument("--out", type=Path, default=Path("build/gpu_check"))
    parser.add_argument("--steps", type=int, help="training steps per family (default 4; 1 with --quick)")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--ddp-timeout", type=int, default=240, help="seconds for the torchrun section")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 1 if args.quick else 4
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.ddp_worker:
        ddp_worker(args)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: torch sees no CUDA device (run with --device cpu --quick to check the code "
              "paths on the CPU)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    began = time.perf_counter()
    report: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv, "environment": environment(device),
                              "sections": {}}
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        root = synthetic(tmp / "data", args.quick)
        for name in args.sections:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                result = SECTIONS[name](args, device, root)
            except Exception:  # noqa: BLE001  (a check records what broke and goes on to the next)
                result = {"error": traceback.format_exc(), "ok": False}
            result["seconds"] = time.perf_counter() - start
            result["cpu_seconds"] = time.process_time() - cpu  # this process's; on a shared machine, the cost
            report["sections"][name] = result
            print(f"{name}: {'ok' if result.get('ok') else 'FAILED'} ({result['seconds']:.1f} s)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["seconds"] = time.perf_counter() - began
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    table = markdown(report)
    (args.out / "gpu_check.md").write_text(table)
    print("\n" + table)
    return 0 if all(r.get("ok") for r in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
