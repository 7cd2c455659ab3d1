"""A flat model's class scores brought back to the labels' size (``--short``) are decoded in bands of output rows:
the ids are those of one whole-image bilinear resize, and no tensor of classes x output pixels is ever made (before,
6000x6000 labels took 12.7 GB)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hierseg.engine import evaluate
from hierseg.engine.evaluate import InferenceOptions, Predictor
from hierseg.models.base import CLASSES


class Flat(nn.Module):
    """Class scores (at the input's size, as every model gives them) from a fixed random projection; argmax."""

    has_class_scores = True
    raw_classes = None
    default_space = CLASSES
    label_spaces = ()
    taxonomy = None  # the Segmenter contract: built on no tree

    def __init__(self, classes: int = 11) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.project = nn.Conv2d(3, classes, 3, padding=1)

    def class_scores(self, image: torch.Tensor) -> torch.Tensor:
        return self.project(image)

    def decode(self, logits: torch.Tensor, dataset: str | None) -> torch.Tensor:
        return logits.argmax(1)


def test_banded_decoding_matches_one_whole_resize_and_stays_small(monkeypatch):
    torch.manual_seed(1)
    model = Flat(classes=5).eval()
    image, size = torch.randn(1, 3, 24, 18), (331, 277)
    with torch.no_grad():
        probs = model.class_scores(image).softmax(1)
        expected = F.interpolate(probs, size=size, mode="bilinear", align_corners=False).clamp_min(1e-12).log().argmax(1)
    largest = []
    interpolate = F.interpolate

    def recording(tensor, *args, **kwargs):
        out = interpolate(tensor, *args, **kwargs)
        largest.append(out.numel())
        return out

    monkeypatch.setattr(evaluate, "_BAND_FLOATS", 1 << 14)
    monkeypatch.setattr(evaluate.F, "interpolate", recording)
    ids = Predictor(model, CLASSES, InferenceOptions(mode="whole"))(image, size)
    assert ids.shape == (1, *size) and torch.equal(ids, expected)
    whole = 5 * size[0] * size[1]
    assert len(largest) > 10 and max(largest) <= (1 << 14) < whole / 20  # bands, never the whole image's scores


def test_small_outputs_keep_the_single_resize(monkeypatch):
    model = Flat().eval()
    image = torch.randn(1, 3, 32, 32)
    calls = []
    interpolate = F.interpolate
    monkeypatch.setattr(evaluate.F, "interpolate", lambda *a, **k: calls.append(k.get("size")) or interpolate(*a, **k))
    Predictor(model, CLASSES)(image, (40, 48))
    assert calls == [(40, 48)]
