"""The contract between models and the engine.

Every model is an ``nn.Module`` with

- ``forward(image, label=None, dataset=None)``: with a label map (``(B, H, W)`` int64 in ``dataset``'s own ids,
  or class indices for raw-class models) it returns ``{"loss": scalar, **named terms}``; without one it returns
  ``{"logits": ...}`` (flat models) or ``{"concepts": ...}`` (DSSPN);
- ``predict(image, dataset=None)``: ``(B, H, W)`` int64 ids in ``dataset``'s label space (the tree's concept
  indices when a universal model is given no dataset);
- ``param_groups()``: ``{"backbone": [...], "head": [...]}``, pretrained and newly initialised parameters, for the
  two learning rates of the paper's schedule;
- ``label_spaces``: the dataset names it can predict (empty for raw-class models).

Training goes through ``forward`` so that DDP's hooks see it.
"""

from __future__ import annotations

import torch
from torch import nn

from hierseg.models.layers import resize
from hierseg.models.outputs import Outputs


class FlatSegmenter(nn.Module):
    """Base of the flat models: subclasses define :meth:`scores`; losses and decoding come from ``outputs``."""

    def __init__(self, outputs: Outputs) -> None:
        super().__init__()
        self.outputs = outputs

    @property
    def label_spaces(self) -> tuple[str, ...]:
        return self.outputs.datasets

    def scores(self, image: torch.Tensor) -> list[tuple[str, torch.Tensor, float]]:
        """``[(name, logits, weight), ...]``: the main prediction first, then auxiliary (deeply supervised) ones.

        In eval mode only the main one is needed.
        """
        raise NotImplementedError

    def loss_terms(self, image: torch.Tensor, label: torch.Tensor, dataset: str | None) -> dict[str, torch.Tensor]:
        terms = {f"loss_{name}": w * self.outputs.loss(logits, label, dataset) for name, logits, w in self.scores(image)}
        return {"loss": torch.stack(list(terms.values())).sum(), **terms}

    def forward(self, image: torch.Tensor, label: torch.Tensor | None = None,
                dataset: str | None = None) -> dict[str, torch.Tensor]:
        if label is not None:
            return self.loss_terms(image, label, dataset)
        return {"logits": resize(self.scores(image)[0][1], image.shape[-2:])}

    @torch.no_grad()
    def predict(self, image: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        logits = resize(self.scores(image)[0][1], image.shape[-2:])
        return self.outputs.decode(logits, dataset)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        backbone = [p for n, p in self.named_parameters() if n.startswith("backbone.")]
        head = [p for n, p in self.named_parameters() if not n.startswith("backbone.")]
        return {"backbone": backbone, "head": head}
