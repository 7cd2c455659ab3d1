"""Training and evaluation transforms."""

from __future__ import annotations

import numpy as np
import torch

from hierseg.data.transforms import IMAGENET_MEAN, EvalTransform, TrainTransform, sliding_windows


def pair(h: int = 40, w: int = 60) -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = 255
    label = np.zeros((h, w), np.uint8)
    label[:, : w // 2] = 7  # left half class 7 on a white image, right half class 0 on black
    return image, label


def test_train_transform_crops_pads_with_ignore_and_keeps_ids_aligned():
    image, label = pair()
    transform = TrainTransform(crop=64, ignore=255, scale=(0.5, 0.5), flip=0.0)
    out = transform(image, label, np.random.default_rng(0))
    assert out["image"].shape == (3, 64, 64) and out["label"].shape == (64, 64)
    assert out["label"].dtype == torch.int64
    assert set(out["label"].unique().tolist()) == {0, 7, 255}  # 20x30 scaled content padded to 64
    assert (out["label"][20:, :] == 255).all() and (out["label"][:, 30:] == 255).all()
    white = out["image"][:, out["label"] == 7]
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor((0.229, 0.224, 0.225))
    assert torch.allclose(white.median(dim=1).values, expected, atol=1e-4)  # bilinear blends only the edge


def test_train_transform_is_deterministic_for_a_generator_and_flips():
    image, label = pair(200, 300)
    transform = TrainTransform(crop=64)
    a = transform(image, label, np.random.default_rng(5))
    b = transform(image, label, np.random.default_rng(5))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    flipped = TrainTransform(crop=300, scale=(1.0, 1.0), flip=1.0)(image[:64], label[:64], np.random.default_rng(0))
    assert (flipped["label"][:64, -1] == 7).all() and (flipped["label"][:64, 0] == 0).all()
    values = set()
    for seed in range(20):
        values |= set(transform(image, label, np.random.default_rng(seed))["label"].unique().tolist())
    assert values <= {0, 7, 255}  # nearest-neighbour resizing never invents ids


def test_eval_transform_keeps_full_resolution_labels():
    image, label = pair()
    out = EvalTransform(short=20)(image, label)
    assert out["image"].shape == (3, 20, 30) and out["label"].shape == (40, 60)


def test_sliding_windows_cover_the_image():
    windows = sliding_windows(100, 250, crop=64, stride=48)
    covered = np.zeros((100, 250), bool)
    for top, left, bottom, right in windows:
        assert bottom - top <= 64 and right - left <= 64
        covered[top:bottom, left:right] = True
    assert covered.all()
    assert windows[-1] == (36, 186, 100, 250)
    assert sliding_windows(30, 40, crop=64, stride=48) == [(0, 0, 30, 40)]
