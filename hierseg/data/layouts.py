"""Where each dataset's official release puts its images and labels (``taxonomy/specs/SOURCES.md``).

One :class:`Layout` per dataset says, for a root and a split, where the image and the label of a sample live.
Readers list them; the synthesiser writes to exactly the same places.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hierseg.taxonomy.errors import HiersegError


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
}


def dataset_root(dataset: str, root: str | Path) -> Path:
    """The folder the layout starts from; ADE20K also accepts the folder that holds ``ADEChallengeData2016``."""
    root = Path(root)
    if dataset == "ade20k" and (root / "ADEChallengeData2016").is_dir():
        return root / "ADEChallengeData2016"
    return root


def layout(dataset: str) -> Layout:
    if dataset not in LAYOUTS:
        raise HiersegError(f"no official layout for {dataset!r}; choose one of {', '.join(LAYOUTS)} "
                           f"or use the generic folder reader")
    return LAYOUTS[dataset]
