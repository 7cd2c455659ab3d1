"""Label tools and prediction scoring on a Cityscapes-layout split, against baselines measured in the same run.

    python bench/labels_bench.py [--files 500] [--width 2048] [--height 1024] [--repeat 2]

Writes a ``gtFine/val`` split of ``--files`` samples in the official layout with every file the release keeps
beside ``*_labelIds.png`` (``*_color.png`` RGBA, ``*_instanceIds.png`` 16-bit, ``*_labelTrainIds.png``,
``*_polygons.json``), and a folder of predictions in labelIds. Then, one process each:

1. ``hierseg labels stats`` (layout listing + ``folder_stats``) and ``hierseg labels remap`` (layout listing +
   ``remap_folder`` cityscapes -> mapillary) in MP/s against a bare loop over the same labelIds files: PIL decode,
   ``np.take(lut, label)``, PIL encode (level 1), plain write. Aim: at least 0.8x the loop.
2. ``hierseg eval --predictions`` (``score_predictions``, one process and two) against the official
   ``cityscapesscripts`` evaluation (``evaluateImgLists``, pure Python path as pip installs it) on the same files:
   as shipped (pixel and instance-level scores, reads ``*_instanceIds.png``) and with ``evalInstLevelScore = False``
   (pixel scores only).
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hierseg.data.layouts import locate, recodes, split_labels
from hierseg.evaluation.score import score_predictions
from hierseg.taxonomy import Taxonomy, load_spec
from hierseg.taxonomy.authoring.export import export_lut
from hierseg.taxonomy.authoring.labelstats import folder_stats
from hierseg.taxonomy.authoring.remap import remap_folder
from hierseg.taxonomy.neurons import NeuronGraph
from hierseg.taxonomy.translate import translation

CITIES = ("frankfurt", "lindau", "munster")


def write_split(root: Path, preds: Path, n: int, height: int, width: int) -> None:
    """Scenes of rectangles (one instance each) in labelIds, with the release's other files beside them."""
    spec = load_spec("cityscapes")
    ids = np.array([0, *spec.ids])
    to_train = np.full(256, 255, np.uint8)
    colors = np.zeros((256, 4), np.uint8)
    colors[:, 3] = 255
    for label in spec.labels:
        to_train[label.id] = int(label.extra["train_id"]) if int(label.extra["train_id"]) >= 0 else 255
        colors[label.id, :3] = label.color or (0, 0, 0)
    instances_of = {label.id for label in spec.labels if label.extra["has_instances"] == "1"}
    rng = np.random.default_rng(0)
    preds.mkdir(parents=True)
    for i in range(n):
        city = CITIES[i % len(CITIES)]
        stem = f"{city}_{i:06d}_000019"
        gt = root / "gtFine" / "val" / city
        gt.mkdir(parents=True, exist_ok=True)
        label = np.full((height, width), rng.choice(ids), np.uint8)
        instances = label.astype(np.uint16)
        for k in range(60):
            h, w = rng.integers(8, height // 3), rng.integers(8, width // 3)
            y, x = rng.integers(0, height - h), rng.integers(0, width - w)
            value = rng.choice(ids)
            label[y:y + h, x:x + w] = value
            instances[y:y + h, x:x + w] = value * 1000 + k if value in instances_of else value
        for name, array in (("labelIds", label), ("instanceIds", instances), ("color", colors[label]),
                            ("labelTrainIds", to_train[label])):
            Image.fromarray(array).save(gt / f"{stem}_gtFine_{name}.png", compress_level=1)
        (gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": height, "imgWidth": width,
                                                                     "objects": []}))
        noisy = np.where(rng.random(label.shape) < 0.1, rng.choice(ids, label.shape), label).astype(np.uint8)
        Image.fromarray(noisy).save(preds / f"{stem}_leftImg8bit.png", compress_level=1)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def official(root: Path, preds: Path, instances: bool) -> float:
    if not hasattr(np, "in1d"):  # removed in numpy 2.4; the official script still calls it
        np.in1d = lambda a, b, assume_unique=False, invert=False: np.isin(  # type: ignore[attr-defined]
            np.ravel(a), b, assume_unique=assume_unique, invert=invert)
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    start = time.perf_counter()
    ev.args.quiet, ev.args.JSONOutput, ev.args.evalInstLevelScore = True, False, instances
    ev.args.predictionPath, ev.args.predictionWalk = str(preds), None
    truths = sorted(str(p) for p in (root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    result = ev.evaluateImgLists([ev.getPrediction(ev.args, t) for t in truths], truths, ev.args)
    official.miou = result["averageScoreClasses"]  # type: ignore[attr-defined]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    graph = NeuronGraph(Taxonomy.load())
    table = translation(graph.taxonomy, "cityscapes", "mapillary")
    lut = export_lut(table)
    mp = args.files * args.width * args.height / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, preds = tmp / "cityscapes", tmp / "pred"
        start = time.perf_counter()
        write_split(root, preds, args.files, args.height, args.width)
        print(f"{args.files} Cityscapes val samples of {args.width}x{args.height} ({mp:.0f} MP of labelIds; "
              f"with color, instanceIds, labelTrainIds, polygons beside them), written in "
              f"{time.perf_counter() - start:.0f} s\n")
        files = [p.relative_to(root) for p in split_labels("cityscapes", *locate("cityscapes", root, "val"))]
        assert len(files) == args.files
        runs = iter(range(1000))

        def bare() -> None:
            dst = tmp / f"bare{next(runs)}"
            for rel in files:
                out = np.take(lut, np.asarray(Image.open(root / rel)))
                buffer = io.BytesIO()
                Image.fromarray(out).save(buffer, format="PNG", compress_level=1)
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                (dst / rel).write_bytes(buffer.getvalue())

        def stats() -> None:
            found = [p.relative_to(root) for p in split_labels("cityscapes", *locate("cityscapes", root, "val"))]
            folder_stats(graph, "cityscapes", root, files=found, recodes=recodes("cityscapes"))

        def remap() -> None:
            found = [p.relative_to(root) for p in split_labels("cityscapes", *locate("cityscapes", root, "val"))]
            remap_folder(table, root, tmp / f"remap{next(runs)}", files=found, recodes=recodes("cityscapes"))

        t_bare, t_stats, t_remap = (best(fn, args.repeat) for fn in (bare, stats, remap))
        print("1. label tools, one process                  MP/s   vs bare loop")
        print(f"   bare PIL decode + np.take + encode       {mp / t_bare:7.1f}   1.00")
        print(f"   labels stats (layout listing + counts)   {mp / t_stats:7.1f}   {t_bare / t_stats:.2f}")
        print(f"   labels remap (layout listing + remap)    {mp / t_remap:7.1f}   {t_bare / t_remap:.2f}")

        report = None

        def ours() -> None:
            nonlocal report
            report = score_predictions(preds, "cityscapes", root, "val")

        t_ours = best(ours, args.repeat)
        t_two = best(lambda: score_predictions(preds, "cityscapes", root, "val", workers=2), args.repeat)
        t_pixels = official(root, preds, instances=False)
        miou_pixels = official.miou  # type: ignore[attr-defined]
        t_full = official(root, preds, instances=True)
        print("\n2. scoring predictions, one process          s      MP/s   official / ours")
        print(f"   hierseg eval --predictions            {t_ours:7.1f}   {mp / t_ours:6.1f}   1.00")
        print(f"     the same, --workers 2               {t_two:7.1f}   {mp / t_two:6.1f}   {t_two / t_ours:.2f}")
        print(f"   official, pixel scores only           {t_pixels:7.1f}   {mp / t_pixels:6.1f}   {t_pixels / t_ours:.1f}")
        print(f"   official as shipped (+ instance IoU)  {t_full:7.1f}   {mp / t_full:6.1f}   {t_full / t_ours:.1f}")
        print(f"   mIoU: ours {report.miou:.9f}, official {miou_pixels:.9f} "
              f"(difference {abs(report.miou - miou_pixels):.1e})")


if __name__ == "__main__":
    main()
