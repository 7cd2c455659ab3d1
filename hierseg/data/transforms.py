"""Training and evaluation transforms on ``(image, label)`` numpy pairs, mmsegmentation's usual recipe.

Training: random scale 0.5-2.0, random crop padded with the ignore value, horizontal flip, photometric
normalisation. Evaluation: full resolution, or windows from :func:`sliding_windows`. Every random draw comes
from the generator passed in, so a sample's augmentation depends only on ``(seed, epoch, index)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize(image: np.ndarray, label: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear for the image, nearest for the label (ids must never be blended)."""
    from PIL import Image

    image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    label = np.asarray(Image.fromarray(label).resize((width, height), Image.NEAREST))
    return image, label


def pad_to(image: np.ndarray, label: np.ndarray, height: int, width: int, ignore: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom and right: image with zeros, label with ``ignore`` so padding is never trained on."""
    h, w = label.shape
    if h >= height and w >= width:
        return image, label
    ph, pw = max(height - h, 0), max(width - w, 0)
    image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
    label = np.pad(label, ((0, ph), (0, pw)), constant_values=ignore)
    return image, label


def to_tensor(image: np.ndarray, label: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> dict[str, torch.Tensor]:
    """``image`` as normalised float32 ``(3, H, W)``, ``label`` as int64 ``(H, W)`` (still the dataset's ids)."""
    return {"image": normalize(image, mean, std),
            "label": torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))}


def normalize(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """``(H, W, 3)`` uint8 to normalised float32 ``(3, H, W)``; in place after the one float copy (12 bytes per
    pixel at the peak, not 36: it matters for very large images)."""
    tensor = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div_(255.0)
    return tensor.sub_(torch.tensor(mean).view(3, 1, 1)).div_(torch.tensor(std).view(3, 1, 1))


@dataclass(frozen=True)
class TrainTransform:
    crop: int = 512
    ignore: int = 255
    scale: tuple[float, float] = (0.5, 2.0)
    flip: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        from PIL import Image

        factor = rng.uniform(*self.scale)
        h, w = label.shape
        sh, sw = max(1, round(h * factor)), max(1, round(w * factor))
        ch, cw = min(self.crop, sh), min(self.crop, sw)
        y, x = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
        # Same result as scaling the whole image and then cropping, but only the crop's source box is resampled:
        # a 2x scale of a 2048x1024 image would otherwise resample 8 megapixels for one 512x512 crop.
        box = (x * w / sw, y * h / sh, (x + cw) * w / sw, (y + ch) * h / sh)
        image = np.asarray(Image.fromarray(image).resize((cw, ch), Image.BILINEAR, box=box))
        label = np.asarray(Image.fromarray(label).resize((cw, ch), Image.NEAREST, box=box))
        image, label = pad_to(image, label, self.crop, self.crop, self.ignore)
        if rng.random() < self.flip:
            image, label = image[:, ::-1], label[:, ::-1]
        return to_tensor(image, label, self.mean, self.std)


@dataclass(frozen=True)
class EvalTransform:
    """Full resolution (or the short side resized to ``short``); no randomness."""

    short: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None) -> dict[str, Any]:
        if self.short is not None:
            h, w = label.shape
            factor = self.short / min(h, w)
            image, _ = resize(image, label, round(h * factor), round(w * factor))  # the label stays full size
        return to_tensor(image, label, self.mean, self.std)

    def image(self, image: np.ndarray) -> torch.Tensor:
        """The model input alone, for prediction (no label to carry along at 8 bytes a pixel)."""
        from PIL import Image

        if self.short is not None:
            h, w = image.shape[:2]
            factor = self.short / min(h, w)
            image = np.asarray(Image.fromarray(image).resize((round(w * factor), round(h * factor)), Image.BILINEAR))
        return normalize(image, self.mean, self.std)


def sliding_windows(height: int, width: int, crop: int, stride: int) -> list[tuple[int, int, int, int]]:
    """``(top, left, bottom, right)`` windows of at most ``crop`` covering the image, the last flush with the edge."""
    if stride < 1 or crop < 1:
        raise ValueError("crop and stride must be positive")

    def starts(size: int) -> list[int]:
        if size <= crop:
            return [0]
        out = list(range(0, size - crop, stride))
        return out + [size - crop]

    return [(y, x, min(y + crop, height), min(x + crop, width)) for y in starts(height) for x in starts(width)]
