"""Where each dataset's official release puts its images and labels (``taxonomy/specs/SOURCES.md``).

One :class:`Layout` per dataset says, for a root and a split, where the image and the label of a sample live.
Readers list them; the synthesiser writes to exactly the same places.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.specs import DATASETS


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
    # Where a split is a list of sample stems (VOC's ImageSets) rather than a folder: the list file of a split.
    list_file: Callable[[Path, str], Path] | None = None

    def label_path(self, root: Path, split: str, stem: str) -> Path:
        return self.label_of(root, self.image_of(root, split, stem), split)


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


LAYOUTS: dict[str, Layout] = {
    "ade20k": _images_annotations("ade20k", ("training", "validation")),
    "coco_stuff": _images_annotations("coco_stuff", ("train2017", "val2017")),
    "cityscapes": Layout(
        "cityscapes", ("train", "val", "test"),
        lambda root, split: root / "leftImg8bit" / split, "*_leftImg8bit.png",
        _cityscapes_label, _cityscapes_image, ".png",
        lambda root, split: root / "gtFine" / split, "*_gtFine_labelIds.png"),
    "mapillary": Layout(
        "mapillary", ("training", "validation"),
        lambda root, split: root / split / "images", "*.jpg",
        lambda root, image, split: root / split / "v1.2" / "labels" / f"{image.stem}.png",
        lambda root, split, stem: root / split / "images" / f"{stem}.jpg", ".jpg",
        lambda root, split: root / split / "v1.2" / "labels", "*.png"),
    # VOCdevkit/VOC2012: JPEGImages holds every image of every task; a segmentation split is the list of stems in
    # ImageSets/Segmentation/<split>.txt, labelled by SegmentationClass/<stem>.png (palette PNGs, 255 = void).
    "pascal_voc": Layout(
        "pascal_voc", ("train", "val", "trainval"),
        lambda root, split: root / "JPEGImages", "*.jpg",
        lambda root, image, split: root / "SegmentationClass" / f"{image.stem}.png",
        lambda root, split, stem: root / "JPEGImages" / f"{stem}.jpg", ".jpg",
        lambda root, split: root / "SegmentationClass", "*.png",
        list_file=lambda root, split: root / "ImageSets" / "Segmentation" / f"{split}.txt"),
}
FOLDER = "folder"  # a generic images/ + masks/ folder (hierseg.data.readers.folder)
# How the synthesiser writes a folder dataset: one subfolder per split under images/ and masks/.
FOLDER_LAYOUT = Layout(
    FOLDER, ("train", "val"),
    lambda root, split: root / "images" / split, "*.jpg",
    lambda root, image, split: root / "masks" / split / f"{image.stem}.png",
    lambda root, split, stem: root / "images" / split / f"{stem}.jpg", ".jpg",
    lambda root, split: root / "masks" / split, "*.png")


def dataset_root(dataset: str, root: str | Path) -> Path:
    """The folder the layout starts from; ADE20K also accepts the folder that holds ``ADEChallengeData2016``, PASCAL
    VOC the folders that hold ``VOCdevkit`` or ``VOC2012``."""
    root = Path(root)
    if dataset == "ade20k" and (root / "ADEChallengeData2016").is_dir():
        return root / "ADEChallengeData2016"
    if dataset == "pascal_voc":
        for inner in ("VOCdevkit/VOC2012", "VOC2012"):
            if (root / inner).is_dir():
                return root / inner
    return root


def layout_name(dataset: str, taxonomy: object = None) -> str:
    """How a dataset's files lie: a built-in dataset's official layout, or the layout an added dataset's spec names
    in the extended tree (``folder`` when it names none)."""
    if dataset in DATASETS:
        return dataset
    datasets = getattr(taxonomy, "artifact", {}).get("datasets", {}) if taxonomy is not None else {}
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
