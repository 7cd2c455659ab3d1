"""Remap a whole annotation folder into another label space (``hierseg labels remap``).

Walks ``*.png`` under a root (sorted, relative paths kept), translates each file through a lookup table, and runs
on ``workers`` processes. Each file is written atomically and recorded in a manifest
(:mod:`hierseg.taxonomy.authoring.remap_manifest`), so a killed run is finished by running it again, while another
translation or a changed source is refused (or redone with ``overwrite``); one remap at a time writes a folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hierseg.core.errors import HiersegError
from hierseg.core.io import FolderLock, atomic_write_bytes, remove_temporaries
from hierseg.taxonomy.annotations import Recode, encode_label, list_label_files, map_files, read_dataset_label
from hierseg.taxonomy.translate import Translation, Unknown


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
    from hierseg.taxonomy.authoring.remap_manifest import snapshot

    src, dst = _state["src"] / rel, _state["dst"] / rel
    label = read_dataset_label(src, _state["recodes"])
    out, unknown = _state["translation"].apply(label, _state["unknown"], where=str(src))
    atomic_write_bytes(dst, encode_label(out), root=_state["dst"])
    return str(rel), int(label.size), unknown, snapshot(dst)


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
    from hierseg.taxonomy.authoring.remap_manifest import plan, snapshot

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
