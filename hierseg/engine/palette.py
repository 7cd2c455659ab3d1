"""Label colours and overlays: a label map blended over its image, with a legend of the classes present.

Colours come from the dataset's spec (its ``color`` column); a label without one, a tree concept and a raw class
get a colour derived from a hash of its name, so the same class has the same colour in every run and process.
"""

from __future__ import annotations

import colorsys
import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hierseg.taxonomy.labelspace import TREE, label_space
from hierseg.taxonomy.specs import DATASETS, dataset_spec
from hierseg.taxonomy.tree import Taxonomy

LEGEND_ROWS = 40  # more classes than this are summarised in one last line
_SWATCH, _PAD, _LEGEND_WIDTH = 14, 6, 220


def stable_color(key: str) -> tuple[int, int, int]:
    """A saturated, mid-bright colour fixed by ``key`` (hashlib, not ``hash()``, so it survives restarts)."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    hue = digest[0] / 256 + digest[1] / 65536
    saturation = 0.55 + 0.4 * digest[2] / 255
    value = 0.65 + 0.3 * digest[3] / 255
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value))  # type: ignore[return-value]


@dataclass(frozen=True)
class Palette:
    """Names and colours of the values of one label space; ``ignore`` is left uncoloured in overlays."""

    space: str
    names: dict[int, str]
    colors: np.ndarray  # (size, 3) uint8, indexed by label value
    ignore: int | None

    def name_of(self, value: int) -> str:
        return self.names.get(value, f"value {value}")


def dataset_palette(dataset: str, taxonomy: Taxonomy | None = None) -> Palette:
    """A built-in dataset's palette, or an added one's from the label table its extended ``taxonomy`` carries."""
    spec = dataset_spec(dataset, taxonomy.artifact if taxonomy is not None else None)
    colors = np.zeros((spec.num_ids, 3), dtype=np.uint8)
    for label in spec.labels:
        colors[label.id] = label.color if label.color is not None else stable_color(f"{dataset}:{label.name}")
    return Palette(dataset, {label.id: label.name for label in spec.labels}, colors, spec.ignore)


def tree_palette(taxonomy: Taxonomy) -> Palette:
    space = label_space(taxonomy, TREE)
    colors = np.zeros((len(space.names), 3), dtype=np.uint8)
    names = {}
    for value, concept in space.names.items():
        colors[value] = stable_color(f"tree:{concept}")
        names[value] = taxonomy[concept].name
    return Palette(TREE, names, colors, None)  # the tree's ignore value (65535) is never predicted


def class_palette(num_classes: int) -> Palette:
    """Raw class indices (a model built with ``num_classes``): no names beyond the index."""
    colors = np.array([stable_color(f"class:{i}") for i in range(num_classes)], dtype=np.uint8).reshape(-1, 3)
    return Palette("classes", {i: f"class {i}" for i in range(num_classes)}, colors, None)


def palette(space: str, taxonomy: Taxonomy | None = None, num_classes: int | None = None) -> Palette:
    """The palette of a dataset, of the tree (``"tree"``), or of ``num_classes`` raw classes (``space="classes"``)."""
    if space == TREE:
        return tree_palette(taxonomy if taxonomy is not None else Taxonomy.load())
    if space in DATASETS or (taxonomy is not None and space in taxonomy.datasets):
        return dataset_palette(space, taxonomy)
    return class_palette(num_classes or 0)


def colorize(label: np.ndarray, pal: Palette) -> np.ndarray:
    """``(H, W, 3)`` uint8 colours of a label map; values outside the palette are black."""
    index = np.clip(label.astype(np.int64), 0, len(pal.colors) - 1)
    out = pal.colors[index]
    out[(label < 0) | (label >= len(pal.colors))] = 0
    return out


def present_values(label: np.ndarray, ignore: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Values present (ascending) and their pixel counts, ``ignore`` left out; one bincount for label ids."""
    if label.size and np.issubdtype(label.dtype, np.integer) and label.min() >= 0 and label.max() < 1 << 20:
        counts = np.bincount(label.reshape(-1))
        if ignore is not None and 0 <= ignore < len(counts):
            counts[ignore] = 0
        values = np.flatnonzero(counts)
        return values, counts[values]
    kept = label[label != ignore] if ignore is not None else label
    return np.unique(kept, return_counts=True)


def overlay(image: np.ndarray, label: np.ndarray, pal: Palette, alpha: float = 0.5) -> Image.Image:
    """The image blended with the label colours (ignore pixels unblended), and a legend to its right listing the
    classes present, most pixels first."""
    blended = np.empty(label.shape + (3,), dtype=np.uint8)
    band = max(1, (1 << 20) // max(1, label.shape[1]))  # ~1 MP of float temporaries at a time, whatever the size
    for top in range(0, label.shape[0], band):
        rows = slice(top, top + band)
        blend = image[rows].astype(np.float32)
        colored = colorize(label[rows], pal).astype(np.float32)
        shown = label[rows] != pal.ignore if pal.ignore is not None else np.ones(label[rows].shape, dtype=bool)
        blend[shown] = (1 - alpha) * blend[shown] + alpha * colored[shown]
        blended[rows] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
    picture = Image.fromarray(blended)

    values, counts = present_values(label, pal.ignore)
    order = np.argsort(-counts, kind="stable")
    present = [(int(values[i]), int(counts[i])) for i in order]
    rows = present[:LEGEND_ROWS]
    line = _SWATCH + _PAD
    height = max(picture.height, _PAD + line * (len(rows) + (len(present) > LEGEND_ROWS)) + _PAD)
    canvas = Image.new("RGB", (picture.width + _LEGEND_WIDTH, height), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    x, total = picture.width + _PAD, max(label.size, 1)
    for row, (value, count) in enumerate(rows):
        y = _PAD + row * line
        color = tuple(int(c) for c in colorize(np.array([value]), pal)[0])
        draw.rectangle((x, y, x + _SWATCH, y + _SWATCH), fill=color, outline=(0, 0, 0))
        draw.text((x + _SWATCH + _PAD, y), f"{pal.name_of(value)} {100 * count / total:.1f}%", fill=(0, 0, 0), font=font)
    if len(present) > LEGEND_ROWS:
        draw.text((x, _PAD + len(rows) * line), f"... and {len(present) - LEGEND_ROWS} more", fill=(0, 0, 0), font=font)
    return canvas
