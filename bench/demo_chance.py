"""The floor under `make demo`'s mIoU: predicting each val split's most frequent evaluated class everywhere.

    python bench/demo_chance.py [--root build/demo/data]

A constant prediction scores that class's pixel share as its IoU and 0 on every other class present, so its mIoU is
share / classes present. Reads the synthetic sets `make demo` writes, through the same readers as `hierseg eval`.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from hierseg.data.readers import official
from hierseg.taxonomy.specs import load_spec

SPLITS = {"coco_stuff": "val2017", "ade20k": "validation", "cityscapes": "val", "mapillary": "validation"}


def constant_miou(dataset: str, root: Path) -> tuple[int, float, float]:
    evaluated = {label.id for label in load_spec(dataset).labels if label.evaluated}
    split = official(dataset, root / dataset, split=SPLITS[dataset])
    counts: Counter[int] = Counter()
    for index in range(len(split)):
        values, n = np.unique(np.asarray(split[index]["label"]), return_counts=True)
        counts.update({int(v): int(c) for v, c in zip(values, n, strict=True) if int(v) in evaluated})
    share = max(counts.values()) / sum(counts.values())
    return len(counts), share, share / len(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("build/demo/data"))
    args = parser.parse_args()
    print(f"{'dataset':<12} {'present':>7} {'majority share':>15} {'constant mIoU':>14}")
    for dataset in SPLITS:
        present, share, miou = constant_miou(dataset, args.root)
        print(f"{dataset:<12} {present:>7} {100 * share:>14.1f}% {100 * miou:>14.2f}")


if __name__ == "__main__":
    main()
