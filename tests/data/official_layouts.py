"""The four official releases laid out by hand, with the files each keeps beside its labels.

Layouts follow the reference data's README (/work/shared/reference/labels). Cityscapes' gtFine keeps
``*_color.png`` (RGBA), ``*_instanceIds.png`` (16-bit, label*1000+instance for instance classes),
``*_polygons.json`` and, after ``csCreateTrainIdLabelImgs``, ``*_labelTrainIds.png`` beside ``*_labelIds.png``.
Mapillary keeps ``instances/`` beside ``labels/``, ``v2.0/`` beside ``v1.2/`` and the configs at the root. ADE20K
ships objectInfo150.txt and sceneCategories.txt. COCO-Stuff's stuff-only JSON and pixel maps (other ids:
183 = other) may sit under ``annotations/``. Every function returns ``{relative label path: label array in the
dataset's ids}`` for the labels a reader must read (only those).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from hierseg.taxonomy import load_spec


def scene(rng: np.random.Generator, values: list[int], h: int, w: int) -> np.ndarray:
    """Rectangles of ``values`` on a background of the first one."""
    label = np.full((h, w), values[0], np.uint8)
    for _ in range(8):
        y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
        label[y:y + rng.integers(2, h // 2 + 2), x:x + rng.integers(2, w // 2 + 2)] = rng.choice(values)
    return label


def save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":
        image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.astype(np.uint8).tobytes())
        image.putpalette([c for i in range(256) for c in (i, 255 - i, (7 * i) % 256)])
        image.save(path)
    else:
        Image.fromarray(array).save(path)


def image(path: Path, h: int, w: int, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90) if path.suffix == ".jpg" else Image.fromarray(pixels).save(path)


def cityscapes_train_ids() -> dict[int, int]:
    return {label.id: int(label.extra["train_id"]) for label in load_spec("cityscapes").labels}


def cityscapes(root: Path, split: str = "val", samples: tuple[str, ...] = ("frankfurt_000000_000019",
               "frankfurt_000001_000058", "lindau_000002_000019"), train_ids_only: tuple[str, ...] = (),
               h: int = 16, w: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    """gtFine + leftImg8bit of one split. Samples in ``train_ids_only`` have a labelTrainIds file and no labelIds."""
    rng = np.random.default_rng(seed)
    ids = [label.id for label in load_spec("cityscapes").labels if label.id >= 0] + [0]
    to_train = cityscapes_train_ids()
    with_instances = [label.id for label in load_spec("cityscapes").labels if label.extra["has_instances"] == "1"]
    colors = {label.id: label.color or (0, 0, 0) for label in load_spec("cityscapes").labels}
    read = {}
    for i, stem in enumerate(samples):
        city = stem.split("_")[0]
        gt = root / "gtFine" / split / city
        image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", h, w, seed + i)
        label = scene(rng, ids, h, w)
        # instance classes: label*1000+instance; the others keep their label id (as in the release)
        instances = np.where(np.isin(label, with_instances), label.astype(np.uint16) * 1000 +
                             rng.integers(0, 3, label.shape).astype(np.uint16), label).astype(np.uint16)
        save(gt / f"{stem}_gtFine_instanceIds.png", instances)
        rgba = np.zeros((h, w, 4), np.uint8)
        rgba[..., 3] = 255
        for value in np.unique(label):
            rgba[label == value, :3] = colors.get(int(value), (0, 0, 0))
        save(gt / f"{stem}_gtFine_color.png", rgba)
        (gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": h, "imgWidth": w, "objects": []}))
        train = np.vectorize(lambda v: to_train.get(int(v), 255))(label).astype(np.uint8)
        save(gt / f"{stem}_gtFine_labelTrainIds.png", train)
        if stem in train_ids_only:
            # what a reader sees through trainIds: the unscored labels all become 0 (unlabeled)
            back = np.zeros(256, np.uint8)
            for value, train_id in to_train.items():
                if 0 <= train_id < 255:
                    back[train_id] = value
            read[f"gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png"] = back[train]
        else:
            save(gt / f"{stem}_gtFine_labelIds.png", label)
            read[f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png"] = label
    return read


def mapillary(root: Path, split: str = "validation", keys: tuple[str, ...] = ("0035fkbjWljhaftpVM37-g",
              "00qclUcInksIYnm19b1Xfw"), h: int = 16, w: int = 24, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    (root / "config_v1.2.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "config_v1.2.json").write_text(json.dumps({"labels": []}))
    (root / "config_v2.0.json").write_text(json.dumps({"labels": []}))
    read = {}
    for i, key in enumerate(keys):
        image(root / split / "images" / f"{key}.jpg", h, w, seed + i)
        label = scene(rng, list(range(66)), h, w)
        save(root / split / "v1.2" / "labels" / f"{key}.png", label, mode="P")
        save(root / split / "v1.2" / "instances" / f"{key}.png", label.astype(np.uint16) * 256 + 3)
        save(root / split / "v2.0" / "labels" / f"{key}.png", scene(rng, list(range(66, 124)), h, w), mode="P")
        save(root / split / "v2.0" / "instances" / f"{key}.png", np.full((h, w), 123 * 256, np.uint16))
        read[f"{split}/v1.2/labels/{key}.png"] = label
    return read


def ade20k(parent: Path, split: str = "validation", n: int = 2, h: int = 16, w: int = 24,
           seed: int = 2) -> dict[str, np.ndarray]:
    """``parent/ADEChallengeData2016/...``; keys relative to ``parent``."""
    rng = np.random.default_rng(seed)
    base = parent / "ADEChallengeData2016"
    base.mkdir(parents=True, exist_ok=True)
    (base / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t11664\t1172\twall\n")
    (base / "sceneCategories.txt").write_text("ADE_val_00000001 abbey\n")
    prefix = "ADE_val" if split == "validation" else "ADE_train"
    read = {}
    for i in range(1, n + 1):
        image(base / "images" / split / f"{prefix}_{i:08d}.jpg", h, w, seed + i)
        label = scene(rng, list(range(151)), h, w)
        save(base / "annotations" / split / f"{prefix}_{i:08d}.png", label)
        read[f"ADEChallengeData2016/annotations/{split}/{prefix}_{i:08d}.png"] = label
    return read


def coco_stuff(root: Path, split: str = "val2017", names: tuple[int, ...] = (139, 285), h: int = 16, w: int = 24,
               seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = [label.id for label in load_spec("coco_stuff").labels] + [255]
    (root / "labels.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "labels.txt").write_text("0: unlabeled\n1: person\n")
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"stuff_{split}.json").write_text(json.dumps({"annotations": []}))
    read = {}
    for name in names:
        image(root / "images" / split / f"{name:012d}.jpg", h, w, seed + name)
        label = scene(rng, values, h, w)
        save(root / "annotations" / split / f"{name:012d}.png", label)
        # the stuff-only pixel maps use other ids (183 = other, 0 = unlabeled): not this dataset's labels
        save(root / "annotations" / f"stuff_{split}_pixelmaps" / f"{name:012d}.png", np.full((h, w), 183, np.uint8))
        read[f"annotations/{split}/{name:012d}.png"] = label
    return read
