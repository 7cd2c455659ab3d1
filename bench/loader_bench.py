"""Loader throughput at 512x512 training crops against decoding the same files with PIL alone, same run.

    python bench/loader_bench.py [--images 48] [--width 1600] [--height 1200]

Files are written in Mapillary Vistas' layout (JPEG images, palette PNG labels) at a typical Vistas size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hierseg.data.loader import multi_dataset_loader
from hierseg.data.readers import official
from hierseg.data.transforms import TrainTransform


def write_dataset(root: Path, n: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    (root / "training/images").mkdir(parents=True)
    (root / "training/v1.2/labels").mkdir(parents=True)
    for i in range(n):
        label = np.full((height, width), rng.integers(0, 65), np.uint8)
        for _ in range(40):
            h, w = rng.integers(20, height // 3), rng.integers(20, width // 3)
            y, x = rng.integers(0, height - h), rng.integers(0, width - w)
            label[y:y + h, x:x + w] = rng.integers(0, 66)
        colours = rng.integers(0, 255, (66, 3), dtype=np.uint8)
        image = colours[label] + rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / f"training/images/{i:06d}.jpg", quality=90)
        png = Image.frombytes("P", (width, height), label.tobytes())
        png.putpalette(colours.reshape(-1).tolist())
        png.save(root / f"training/v1.2/labels/{i:06d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root, args.images, args.width, args.height)
        data = official("mapillary", root, "training", transform=TrainTransform(crop=512, ignore=65))
        print(f"{args.images} Mapillary-layout samples of {args.width}x{args.height}, 512x512 crops, batch 8\n")

        def pil_only() -> None:
            for pair in data.pairs:
                np.asarray(Image.open(pair.image).convert("RGB"))
                np.asarray(Image.open(pair.label))

        def loader(workers: int) -> None:
            batches, _ = multi_dataset_loader([data], batch_size=8, workers=workers)
            for _ in batches:
                pass

        rows = [("PIL decode only (1 process)", pil_only), ("hierseg loader, 0 workers", lambda: loader(0)),
                ("hierseg loader, 2 workers", lambda: loader(2))]
        timings = {}
        for name, fn in rows:
            fn()  # warm the page cache and the worker start-up path
            start = time.perf_counter()
            fn()
            timings[name] = time.perf_counter() - start
        base = timings[rows[0][0]]
        images = args.images // 8 * 8
        print(f"{'':<32}images/s   vs PIL decode")
        for name, _ in rows:
            count = args.images if name.startswith("PIL") else images
            print(f"{name:<32}{count / timings[name]:8.1f}   {base / timings[name] * count / args.images:.2f}")


if __name__ == "__main__":
    main()
