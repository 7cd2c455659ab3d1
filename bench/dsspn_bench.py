"""A DSSPN head training step in three modes, same run: dynamic batching, one image at a time, fixed structure.

    python bench/dsspn_bench.py [--batch 8] [--size 65] [--rounds 2] [--device cpu|cuda] [--datasets ...]

The head is the paper's (the 359-concept tree's neurons, m0 = 256, m = 48) on random root features of
``batch x 256 x size x size``; the labels, hence the activated sub-graphs, are synthetic scenes of each dataset
(one dataset per batch, as in joint training). A step is forward + backward of the head loss. Reported per mode:
median step time and activation memory (bytes of the tensors autograd saves for backward, counted once per
storage; on CUDA also ``torch.cuda.max_memory_allocated``), as ratios against the dynamic mode.

- dynamic: each neuron runs once on the images that activate it (paper 3.5);
- per-image: each image alone through its own sub-graph, one backward per image (peak = the largest image);
- fixed: every neuron the dataset supervises runs on every image.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from activation_memory import saved_activations  # bench/ is on the path of a bench script

from hierseg.data.synth import label_map, scene
from hierseg.models.dsspn import NeuronHead
from hierseg.taxonomy import NeuronGraph, Taxonomy

DATASETS = ("cityscapes", "mapillary", "ade20k", "coco_stuff")


def labels(dataset: str, batch: int, size: int, seed: int) -> torch.Tensor:
    maps = [label_map(dataset, scene(dataset, seed * batch + i, size=2 * size - 1, seed=seed)[1]) for i in range(batch)]
    return torch.as_tensor(np.stack(maps).astype(np.int64))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step(head: NeuronHead, h0: torch.Tensor, label: torch.Tensor, dataset: str, mode: str) -> tuple[float, int, int]:
    """Seconds, saved bytes (peak over the backward passes), CUDA peak bytes (0 on the CPU)."""
    device = h0.device
    head.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if device.type == "cuda" else 0
    sync(device)
    start = time.perf_counter()
    peak_saved = 0
    parts = [(h0[b : b + 1], label[b : b + 1]) for b in range(len(h0))] if mode == "per-image" else [(h0, label)]
    for features, target in parts:
        with saved_activations() as saved:
            loss, _ = head.loss(features, target, dataset, "fixed" if mode == "fixed" else "dynamic")
        loss.backward()
        peak_saved = max(peak_saved, saved.total)
    sync(device)
    seconds = time.perf_counter() - start
    cuda_peak = torch.cuda.max_memory_allocated() - base if device.type == "cuda" else 0
    return seconds, peak_saved, cuda_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=65)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    device = torch.device(args.device)
    graph = NeuronGraph(Taxonomy.load())
    torch.manual_seed(0)
    head = NeuronHead(graph).to(device)
    modes = ("dynamic", "per-image", "fixed")
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"DSSPN head step: {len(graph.taxonomy)} concepts, {len(graph)} neurons, batch {args.batch}, "
          f"features {args.size}x{args.size}, {device} ({name})\n")
    batches = {ds: labels(ds, args.batch, args.size, 0).to(device) for ds in args.datasets}
    h0 = torch.rand(args.batch, 256, args.size, args.size, device=device, requires_grad=True)
    for ds, label in batches.items():  # warm-up (allocator, kernels, lookup tables)
        step(head, h0, label, ds, "dynamic")
    times: dict[str, list[float]] = {m: [] for m in modes}
    saved: dict[str, list[int]] = {m: [] for m in modes}
    cuda: dict[str, list[int]] = {m: [] for m in modes}
    print(f"{'dataset':<12} {'neurons/img':>11} {'union':>6}   " + "   ".join(f"{m + ' s':>12}" for m in modes))
    for round_ in range(args.rounds):
        for ds, label in batches.items():
            row = {}
            for mode in modes:  # interleaved, so drift on a shared machine hits every mode alike
                seconds, nbytes, peak = step(head, h0, label, ds, mode)
                times[mode].append(seconds)
                saved[mode].append(nbytes)
                cuda[mode].append(peak)
                row[mode] = seconds
            if round_ == 0:
                act = head.activation(ds, label[:, :: 2, :: 2])
                print(f"{ds:<12} {act.sum(1).mean():>11.1f} {act.any(0).sum():>6}   "
                      + "   ".join(f"{row[m]:>12.3f}" for m in modes))
    dyn_t = statistics.median(times["dynamic"])
    dyn_m = max(saved["dynamic"])
    print(f"\n{'mode':<10} {'median s':>9} {'vs dynamic':>11} {'saved MiB (max)':>16} {'vs dynamic':>11}"
          + (f" {'CUDA peak MiB':>14}" if device.type == "cuda" else ""))
    for mode in modes:
        t, m = statistics.median(times[mode]), max(saved[mode])
        line = f"{mode:<10} {t:>9.3f} {t / dyn_t:>10.2f}x {m / 2**20:>16.1f} {m / dyn_m:>10.2f}x"
        if device.type == "cuda":
            line += f" {max(cuda[mode]) / 2**20:>14.1f}"
        print(line)
    fixed, per_image = statistics.median(times["fixed"]), statistics.median(times["per-image"])
    print(f"\ndynamic vs fixed: {fixed / dyn_t:.2f}x faster (aim >= 4), {dyn_m / max(saved['fixed']):.2f} of its "
          f"activation memory (aim <= 0.33); vs per-image: {dyn_t / per_image:.2f} of its time "
          f"(aim <= 1.10 on the CPU, <= 0.5 on a GPU)")


if __name__ == "__main__":
    main()
