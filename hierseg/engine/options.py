"""How an image is run at evaluation and prediction: :class:`InferenceOptions`.

Free of torch, so the CLI's option defaults (``--max-pixels``) come from here without importing the model zoo.
"""

from __future__ import annotations

from dataclasses import dataclass

from hierseg.core.errors import HiersegError

MODES = ("whole", "slide")
MAX_PIXELS = 2048 * 2048  # Cityscapes (2048x1024), ADE20K and COCO run whole; larger images slide


@dataclass(frozen=True)
class InferenceOptions:
    """How an image is run: ``whole`` or ``slide`` (``crop``-sized windows every ``stride`` pixels, default two
    thirds of the crop), ``flip`` averaging, and ``short``: the short side resized to this before the model (the
    prediction is brought back to the original size)."""

    mode: str = "whole"
    crop: int = 512
    stride: int | None = None
    flip: bool = False
    short: int | None = None
    max_pixels: int | None = MAX_PIXELS  # above it, slide (bounded memory) whatever the mode; None: no limit

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise HiersegError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        for name in ("crop", "stride", "short", "max_pixels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise HiersegError(f"{name} must be a positive number of pixels, not {value}")

    @property
    def window_stride(self) -> int:
        return self.stride or max(1, self.crop * 2 // 3)
