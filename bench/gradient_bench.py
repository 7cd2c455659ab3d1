"""How hard each head pulls on the shared features: the gradient norm reaching the backbone from DSSPN's loss (both
weightings) against DeepLab's universal loss, on the same synthetic batches, at initialisation (issue 12).

    python bench/gradient_bench.py [--batches 8] [--batch 8] [--crop 112] [--threads 2]

With plain SGD the size of that gradient is the effective learning rate of the backbone, so a head whose gradient is
many times DeepLab's trains its backbone at a much higher rate under the same ``lr``. Every model starts from the
same backbone weights (seed 0); each figure is the median over ``--batches`` batches of one dataset (Cityscapes,
then Mapillary), as ratios against DeepLab's universal head on the same batch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from hierseg.data.layouts import resolve_split
from hierseg.data.loader import multi_dataset_loader
from hierseg.data.readers import official
from hierseg.data.synth import synthesize
from hierseg.data.transforms import TrainTransform
from hierseg.models import create_model
from hierseg.taxonomy import load_spec

DATASETS = ("cityscapes", "mapillary")
ARMS = {
    "deeplab universal": ("deeplab_resnet18", {"datasets": list(DATASETS)}),
    "dsspn, per-pixel weighting": ("dsspn_resnet18", {"m": 32, "weighting": "pixel"}),
    "dsspn, per-neuron weighting": ("dsspn_resnet18", {"m": 32, "weighting": "neuron"}),
}


def backbone_gradient(model: torch.nn.Module, batch: dict) -> float:
    model.zero_grad(set_to_none=True)
    model(batch["image"], batch["label"], batch["dataset"])["loss"].backward()
    grads = [p.grad.flatten() for p in model.backbone.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {}
    for name, (model, kwargs) in ARMS.items():
        torch.manual_seed(0)
        models[name] = create_model(model, **kwargs).train()
    print(f"backbone gradient norm at initialisation, batch {args.batch} x crop {args.crop}, median of "
          f"{args.batches} batches, ratio to deeplab universal")
    print(f"{'dataset':<12}" + "".join(f"{name:>30}" for name in ARMS))
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in DATASETS:
            synthesize(dataset, Path(tmp) / dataset, n=args.batch * args.batches, size=128, seed=0)
            data = official(dataset, Path(tmp) / dataset, resolve_split(dataset, "train"),
                            transform=TrainTransform(crop=args.crop, ignore=load_spec(dataset).ignore))
            loader, _ = multi_dataset_loader([data], args.batch, seed=0, workers=0)
            norms: dict[str, list[float]] = {name: [] for name in ARMS}
            for batch in loader:
                for name, model in models.items():
                    norms[name].append(backbone_gradient(model, batch))
            base = statistics.median(norms["deeplab universal"])
            print(f"{dataset:<12}" + "".join(f"{statistics.median(v) / base:>29.1f}x" for v in norms.values())
                  + f"   (deeplab: {base:.3g})")


if __name__ == "__main__":
    main()
