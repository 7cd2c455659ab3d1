"""Label maps and colour overlays for images: ``hierseg predict``.

For each image it writes ``labels/REL.png``, the prediction in the label space's ids (8-bit for a dataset,
16-bit for tree concept indices), and ``overlays/REL.png``, the image blended with the label colours and a legend
of the classes present. ``REL`` is the image's path relative to the folder it was found in (its file name for an
image named directly), with a ``.png`` suffix. Every file is written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_bytes, writing_into
from hierseg.data.readers import IMAGE_SUFFIXES, read_image
from hierseg.data.transforms import EvalTransform
from hierseg.engine.distributed import evaluating, parse_device, unwrap
from hierseg.engine.evaluate import CLASSES, Predictor, resolve_space
from hierseg.engine.options import InferenceOptions
from hierseg.engine.palette import Palette, overlay, palette, present_values
from hierseg.engine.zero_shot import evaluation_tree
from hierseg.taxonomy.annotations import encode_label
from hierseg.taxonomy.labelspace import TREE
from hierseg.taxonomy.tree import Taxonomy


@dataclass(frozen=True)
class Prediction:
    image: Path
    label: Path
    overlay: Path | None
    values: tuple[int, ...]  # label values present, most pixels first


def collect_images(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``(image, relative output path)`` for image files and folders (searched recursively, hidden files skipped)."""
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(item).parts))
            if not files:
                raise HiersegError(f"{item}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            found += [(p, p.relative_to(item)) for p in files]
        elif item.is_file():
            found.append((item, Path(item.name)))
        else:
            raise HiersegError(f"{item}: no such image or folder")
    if not found:
        raise HiersegError("no images given")
    seen: dict[Path, Path] = {}
    for image, rel in found:
        key = rel.with_suffix(".png")
        if key in seen:
            raise HiersegError(f"{image} and {seen[key]} would both be written as {key}; "
                               "predict them into separate --out folders")
        seen[key] = image
    return found


def label_dtype(space: str, pal: Palette) -> np.dtype:
    return np.dtype(np.uint16 if space == TREE or len(pal.colors) > 256 else np.uint8)


def predict_images(model: nn.Module, inputs: Sequence[str | Path], out: str | Path, dataset: str | None = None, *,
                   options: InferenceOptions | None = None, device: str | torch.device | None = None,
                   taxonomy: Taxonomy | None = None, overlays: bool = True, alpha: float = 0.5,
                   on_image: Callable[[Path], None] | None = None, projection: str | None = None) -> list[Prediction]:
    """Predict every image of ``inputs`` into ``out``; ``dataset`` picks the label space (``"tree"`` for concept
    indices; default: the model's own dataset, or the tree for a universal model), read in the model's own tree. A
    dataset the model never trained on, which ``taxonomy`` (a superset of that tree) covers, is predicted through the
    tree by ``projection`` (:mod:`hierseg.engine.zero_shot`)."""
    if not 0.0 <= alpha <= 1.0:
        raise HiersegError(f"alpha must be between 0 and 1, not {alpha}")
    images = collect_images(inputs)
    module = unwrap(model)
    taxonomy = evaluation_tree(module, taxonomy)  # the model's own, or a checked superset of it
    space = resolve_space(module, dataset, taxonomy, projection)
    pal = palette(space, taxonomy, module.raw_classes if space == CLASSES else None)
    dtype = label_dtype(space, pal)
    device = parse_device(device)
    transform = EvalTransform((options or InferenceOptions()).short)
    out = Path(out)
    written: list[Prediction] = []
    predictor = Predictor(module, space, options, taxonomy, projection)  # refuses before anything is written
    with evaluating(module, device), writing_into(out):  # labels/ and overlays/ below it: real folders only
        for path, rel in images:
            image = read_image(path)
            tensor = transform.image(image)[None].to(device)
            with torch.inference_mode():
                ids = predictor(tensor, image.shape[:2])[0].cpu().numpy()
            del tensor  # 12 bytes a pixel, not needed for writing
            if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(dtype).max):
                raise HiersegError(f"{path}: the model predicted value {int(ids.max())}, outside {space}'s label ids")
            label_path = atomic_write_bytes(out / "labels" / rel.with_suffix(".png"), encode_label(ids.astype(dtype)))
            overlay_path = None
            if overlays:
                buffer = io.BytesIO()
                overlay(image, ids, pal, alpha).save(buffer, format="PNG")
                overlay_path = atomic_write_bytes(out / "overlays" / rel.with_suffix(".png"), buffer.getvalue())
            values, counts = present_values(ids, None)
            order = np.argsort(-counts, kind="stable")
            written.append(Prediction(path, label_path, overlay_path, tuple(int(values[i]) for i in order)))
            if on_image is not None:
                on_image(path)
    return written
