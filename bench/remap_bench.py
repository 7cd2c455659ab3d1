"""Remap throughput and target building time, against baselines measured in the same run.

    python bench/remap_bench.py [--images 12] [--height 1024] [--width 2048]

1. In memory, one process: ``Translation.apply`` (gather + undefined-value check) against a plain
   ``np.take(lut, label)`` and against a per-class masking loop (``out[label == k] = lut[k]`` for each label).
2. On files, one worker: ``remap_folder`` (PNG decode, apply, PNG encode, atomic write) against the same steps
   written as a bare loop (PIL decode, np.take, PIL encode, plain write).
3. Per-neuron child targets of a 512x512 label, whole neuron graph, per dataset.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hierseg.taxonomy import Taxonomy
from hierseg.taxonomy.annotations import list_label_files
from hierseg.taxonomy.authoring.export import export_lut
from hierseg.taxonomy.authoring.remap import remap_folder
from hierseg.taxonomy.neurons import NeuronGraph
from hierseg.taxonomy.subgraph import activated_neurons
from hierseg.taxonomy.translate import translation


def scene(rng: np.random.Generator, ids: np.ndarray, shape: tuple[int, int], regions: int = 60) -> np.ndarray:
    """A label map of rectangles, like an annotation's regions (not noise, which PNG cannot compress)."""
    label = np.full(shape, rng.choice(ids), dtype=np.uint8)
    for _ in range(regions):
        h, w = rng.integers(8, shape[0] // 3), rng.integers(8, shape[1] // 3)
        y, x = rng.integers(0, shape[0] - h), rng.integers(0, shape[1] - w)
        label[y:y + h, x:x + w] = rng.choice(ids)
    return label


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    args = parser.parse_args()
    graph = NeuronGraph(Taxonomy.load())
    rng = np.random.default_rng(0)
    shape = (args.height, args.width)
    mp = args.images * args.height * args.width / 1e6
    print(f"{args.images} Mapillary-id label maps of {args.width}x{args.height} ({mp:.1f} MP)\n")

    print(f"1. in memory, one process{'':<51}MP/s   vs np.take")
    for source, target in (("mapillary", "cityscapes"), ("mapillary", "coco_stuff"), ("coco_stuff", "ade20k"),
                           ("mapillary", "tree")):
        table = translation(graph.taxonomy, source, target)
        ids = np.array([*table.source.ids, table.source.ignore])
        labels = [scene(rng, ids, shape) for _ in range(args.images)]
        lut = export_lut(table)
        t_take = best(lambda: [np.take(lut, label) for label in labels])  # noqa: B023
        t_apply = best(lambda: [table.apply(label) for label in labels])  # noqa: B023

        def loop(table=table, labels=labels) -> None:
            for label in labels:
                out = np.full(label.shape, table.target.ignore, dtype=table.target.dtype)
                for entry in table.entries:
                    out[label == entry.source_id] = entry.target_id

        t_loop = best(loop, repeat=1)
        pair = f"{source} -> {target} ({len(table.entries)} classes)"
        print(f"   {pair:<40} np.take           {mp / t_take:6.0f}   1.00")
        print(f"   {pair:<40} Translation.apply {mp / t_apply:6.0f}   {t_take / t_apply:.2f}")
        print(f"   {pair:<40} per-class loop    {mp / t_loop:6.0f}   {t_take / t_loop:.3f}"
              f"   (apply: {t_loop / t_apply:.1f}x the loop)")

    print("\n2. files, one worker                         MP/s   vs bare loop")
    table = translation(graph.taxonomy, "mapillary", "cityscapes")
    lut = export_lut(table)
    ids = np.array([*table.source.ids, table.source.ignore])
    labels = [scene(rng, ids, shape) for _ in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i, label in enumerate(labels):
            Image.fromarray(label).save(src / f"{i:03d}.png")
        files = list_label_files(src)

        def bare(dst: Path) -> None:
            dst.mkdir()
            for rel in files:
                out = np.take(lut, np.asarray(Image.open(src / rel)))
                buffer = io.BytesIO()
                Image.fromarray(out).save(buffer, format="PNG", compress_level=1)
                (dst / rel).write_bytes(buffer.getvalue())

        runs = iter(range(100))
        t_bare = best(lambda: bare(Path(tmp) / f"bare{next(runs)}"))
        t_remap = best(lambda: remap_folder(table, src, Path(tmp) / f"remap{next(runs)}", workers=1))
        print(f"   bare PIL decode + np.take + encode       {mp / t_bare:7.1f}   1.00")
        print(f"   remap_folder (checks, atomic writes)     {mp / t_remap:7.1f}   {t_bare / t_remap:.2f}")

    print("\n3. targets of one 512x512 label, ms          whole graph  activated only  neurons")
    for dataset in graph.taxonomy.datasets:
        space = graph.space(dataset)
        ids = np.array([*space.ids, space.ignore])
        crops = [scene(rng, ids, (512, 512), regions=20) for _ in range(20)]
        t_all = best(lambda: [graph.targets(dataset, c) for c in crops]) / len(crops)  # noqa: B023
        active = [activated_neurons(graph, dataset, c) for c in crops]
        t_act = best(lambda: [graph.targets(dataset, c, n) for c, n in zip(crops, active, strict=True)])  # noqa: B023
        print(f"   {dataset:<12}                              {1e3 * t_all:6.2f}        "
              f"{1e3 * t_act / len(crops):6.2f}        {np.mean([len(a) for a in active]):.1f}")


if __name__ == "__main__":
    main()
