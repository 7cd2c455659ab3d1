"""Label files: read and write label PNGs (with a dataset layout's recodes), list a folder's, and map a function
over many of them on ``workers`` processes (:func:`map_files`, which evaluation and the authoring tools share).

Remapping whole folders into another label space is an authoring tool: :mod:`hierseg.taxonomy.authoring.remap`.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.core.io import check_regular

_MODES = {"L": np.uint8, "P": np.uint8, "I;16": np.uint16, "I": None}


def list_label_files(root: str | Path, pattern: str = "*.png") -> list[Path]:
    """Relative paths of the files matching ``pattern`` at any depth under ``root``, sorted; hidden files (our
    temporaries) are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise HiersegError(f"{root}: no such annotation folder")
    files = [p.relative_to(root) for p in root.rglob(pattern) if not p.name.startswith(".") and p.is_file()]
    return sorted(files)


def image_too_large(path: Path, exc: Exception, what: str = "image") -> HiersegError:
    """Pillow's decompression-bomb guard refused ``path``: one line saying so (Pillow's own message is a
    ``DecompressionBombError`` traceback about a DOS attack)."""
    import re

    from PIL import Image

    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    found = re.findall(r"\d+", str(exc))  # "Image size (900000000 pixels) exceeds limit of 178956970 pixels, ..."
    size = f"{int(found[0]) / 1e6:.0f} MP" if found else "more pixels"
    return HiersegError(f"{path}: {what} of {size}, more than the {limit / 1e6:.0f} MP Pillow decodes (its "
                        "decompression-bomb limit); resize or tile it")


def read_label(path: Path) -> np.ndarray:
    """A single-channel label PNG as an integer array (palette PNGs give their indices, as Mapillary's do)."""
    from PIL import Image, UnidentifiedImageError

    check_regular(path, "label PNG")  # a FIFO named *.png would block the reader
    try:
        with Image.open(path) as image:
            if image.mode not in _MODES:
                raise HiersegError(f"{path}: label PNG has mode {image.mode}; expected one channel (L, P or I;16)")
            array = np.asarray(image)
    except Image.DecompressionBombError as exc:
        raise image_too_large(path, exc, "label PNG") from None
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise HiersegError(f"{path}: cannot read label PNG ({exc})") from None
    if array.dtype not in (np.uint8, np.uint16):
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise HiersegError(f"{path}: label values outside 0..65535")
        array = array.astype(np.uint16)
    return array


@dataclass(frozen=True)
class Recode:
    """Label files whose name ends in ``suffix`` hold other values (Cityscapes' trainIds): ``table`` maps each value
    to the dataset's id, :attr:`UNDEFINED` where the value means nothing."""

    UNDEFINED = -1

    suffix: str
    table: np.ndarray
    what: str  # what the values are, for messages: "cityscapes trainId"

    def apply(self, label: np.ndarray, path: Path) -> np.ndarray:
        if label.size and int(label.max()) >= len(self.table):
            raise HiersegError(f"{path}: value {int(label.max())} is not a {self.what}")
        out = np.take(self.table, label)
        bad = out < 0
        if bad.any():
            raise HiersegError(f"{path}: value {int(label[bad].flat[0])} is not a {self.what}")
        return out.astype(np.uint8 if out.max(initial=0) < 256 else np.uint16)


def read_dataset_label(path: Path, recodes: tuple[Recode, ...] = ()) -> np.ndarray:
    """:func:`read_label`, then the matching :class:`Recode` (by file name) into the dataset's ids."""
    label = read_label(path)
    for recode in recodes:
        if path.name.endswith(recode.suffix):
            return recode.apply(label, path)
    return label


def encode_label(array: np.ndarray) -> bytes:
    """PNG bytes of a label map: 8-bit grayscale, or 16-bit for values above 255 (tree labels)."""
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(array.astype(np.uint8) if array.dtype == np.uint8 else array.astype(np.uint16))
    image.save(buffer, format="PNG", compress_level=1)  # labels compress well even at level 1; it is 5x faster
    return buffer.getvalue()


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the process that made it dies, however it dies (SIGKILL too)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _init_worker(init: Callable[..., None], *args: Any) -> None:
    # Signals to the process group (Ctrl-C, a service manager's SIGTERM) are the main process's to handle: it
    # terminates the pool. A worker killed by one could die holding the pool's queue lock, and the termination
    # would then wait on that lock forever; so workers take a process group of their own and ignore SIGINT, and
    # go when the main process goes.
    if hasattr(os, "setpgid"):
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    init(*args)


def map_files(worker: Callable[[Path], Any], items: list[Path], workers: int, init: Callable[..., None],
         args: tuple[Any, ...]) -> Iterator[Any]:
    """Map ``worker`` over ``items`` in this process or on a pool; the first error, or an exception in the caller
    (SIGTERM turned into one by the CLI), terminates the pool."""
    if workers <= 1 or len(items) <= 1:
        init(*args)
        yield from map(worker, items)
        return
    context = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    with context.Pool(workers, initializer=_init_worker, initargs=(init, *args)) as pool:
        yield from pool.imap_unordered(worker, items, chunksize=max(1, min(16, len(items) // (workers * 8))))
