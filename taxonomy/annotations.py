"""Whole annotation folders: remap every label PNG into another label space, and count what a folder holds.

Both walk ``*.png`` under a root (sorted, relative paths kept), work through a lookup table per file, and run on
``workers`` processes. Remap writes each file atomically and records what made it in a manifest
(:mod:`hierseg.taxonomy.remap_manifest`), so a killed run is finished by running it again, while another
translation or a changed source is refused (or redone with ``overwrite``); one remap at a time writes a folder.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.core.io import FolderLock, atomic_write_bytes, check_regular, remove_temporaries
from hierseg.taxonomy.translate import Translation, Unknown

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


@dataclass
class RemapReport:
    files: int = 0
    written: int = 0
    skipped: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0
    unknown_pixels: dict[str, int] = field(default_factory=dict)  # file -> pixels of undefined values (--unknown ignore)


_state: dict[str, Any] = {}


def _init_remap(translation: Translation, src: Path, dst: Path, unknown: Unknown,
                recodes: tuple[Recode, ...] = ()) -> None:
    _state.update(translation=translation, src=src, dst=dst, unknown=unknown, recodes=recodes)


def _remap_one(rel: Path) -> tuple[str, int, int, dict[str, int]]:
    """Remap one file; returns (relative path, pixels, undefined pixels, the output's size and mtime)."""
    from hierseg.taxonomy.remap_manifest import snapshot

    src, dst = _state["src"] / rel, _state["dst"] / rel
    label = read_dataset_label(src, _state["recodes"])
    out, unknown = _state["translation"].apply(label, _state["unknown"], where=str(src))
    atomic_write_bytes(dst, encode_label(out), root=_state["dst"])
    return str(rel), int(label.size), unknown, snapshot(dst)


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


def remap_folder(translation: Translation, src: str | Path, dst: str | Path, workers: int = 1,
                 unknown: Unknown = "error", on_file: Callable[[str], None] | None = None,
                 files: list[Path] | None = None, recodes: tuple[Recode, ...] = (),
                 overwrite: bool = False) -> RemapReport:
    """Rewrite every label PNG under ``src`` in the target's ids under ``dst``, same relative paths.

    ``files`` (paths relative to ``src``) are the files to remap, by default :func:`list_label_files` of ``src``;
    ``recodes`` read files in another encoding (a dataset layout's, e.g. Cityscapes' labelTrainIds) first. Outputs
    the manifest vouches for are skipped; ``overwrite`` redoes outputs of another translation or of changed sources
    instead of refusing them.
    """
    from hierseg.taxonomy.remap_manifest import plan, snapshot

    src, dst = Path(src), Path(dst)
    files = list_label_files(src) if files is None else files
    if src.resolve() == dst.resolve():
        raise HiersegError(f"{dst}: destination is the source folder; remap writes to a new folder")
    if dst.resolve().is_relative_to(src.resolve()):
        raise HiersegError(f"{dst}: destination lies inside the source folder {src}, so a re-run would read its "
                           "own outputs; remap into a folder outside it")
    if src.resolve().is_relative_to(dst.resolve()):
        raise HiersegError(f"{src}: the source lies inside the destination folder {dst}, so outputs (and "
                           "--overwrite) could replace source annotations; remap into a folder outside it")
    report, start = RemapReport(files=len(files)), time.perf_counter()
    with FolderLock(dst, "labels remap"):
        remove_temporaries(dst, recursive=True)  # left by a killed run; under the lock, no one else's
        manifest, todo, done = plan(translation, src, dst, files, unknown, overwrite, recodes)
        report.skipped = len(done)
        for rel in done:
            if on_file:
                on_file(str(rel))
        sources = {str(rel): snapshot(src / rel) for rel in todo}
        for rel in sources:
            manifest.files.pop(rel, None)  # until rewritten, an output is unrecorded: redone if the run is killed
        manifest.save()
        try:
            for rel, pixels, undefined, output in map_files(_remap_one, todo, workers, _init_remap,
                                                            (translation, src, dst, unknown, recodes)):
                manifest.files[rel] = {**sources[rel], "undefined": undefined, "output": output}
                manifest.save(force=False)
                report.written += 1
                report.megapixels += pixels / 1e6
                if undefined:
                    report.unknown_pixels[rel] = undefined
                if on_file:
                    on_file(rel)
        except BaseException:
            try:
                manifest.save()  # the files finished so far stay on record
            except HiersegError:
                pass  # the first fault (a full disk, say) is the one to report
            raise
        manifest.save()
    report.seconds = time.perf_counter() - start
    return report
