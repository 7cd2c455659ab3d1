"""What made each file of a remapped folder: ``DST/remap_manifest.json``.

A re-run of ``remap_folder`` trusts an existing output only when the manifest says it was made by the same
translation (source and target space, and the lookup table itself, so a changed tree counts as another
translation) from a source file of the same size and modification time, and, for a run that stops at undefined
values, without any undefined value mapped to ignore; and only when the output itself still has the size and
modification time it had when it was written (one truncated or edited since is not vouched for). Anything else is
refused, or redone with ``overwrite``.

The manifest is written atomically: before the first output (so an interrupted run leaves its translation on
record), every couple of seconds while the run goes on, and at the end, however the run ends. A run killed between
two saves leaves outputs without an entry; they are adopted when the output is newer than the manifest's start and
than its source (the source has not changed since it was read) and decodes as a whole label PNG, and redone
otherwise. An entry of an older manifest, which did not record its output, is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_text, read_text
from hierseg.taxonomy.translate import Translation

MANIFEST = "remap_manifest.json"
FORMAT = "hierseg-remap-manifest/1"
SAVE_EVERY_S = 2.0


def _tool() -> str:
    from hierseg import __version__

    return f"hierseg {__version__}"


def recipe(translation: Translation, recodes: tuple[Any, ...] = ()) -> dict[str, str]:
    """What decides the bytes of every output: the two spaces, the lookup table (and the target's ignore), and the
    recodes that read files of another encoding (Cityscapes' labelTrainIds) first."""
    table = hashlib.sha256(translation.lut.tobytes() + f"|{translation.lut.dtype}|{translation.target.ignore}".encode())
    for recode in recodes:
        table.update(f"|{recode.suffix}|{recode.table.dtype}|".encode() + recode.table.tobytes())
    return {"source": translation.source.name, "target": translation.target.name, "table": table.hexdigest()}


def snapshot(path: Path) -> dict[str, int]:
    """The source file as it is read: size and modification time (nanoseconds)."""
    info = os.stat(path)
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


@dataclass
class RemapManifest:
    path: Path
    recipe: dict[str, str]
    started_ns: int  # when this translation's first output was about to be written
    unknown: str = "error"  # the --unknown of the latest run (outputs it leaves unrecorded may hold ignored values)
    # rel -> the source's size and mtime_ns, undefined (None: unknown), output: {size, mtime_ns} as written
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    saved_at: float = 0.0

    @classmethod
    def load(cls, dst: Path) -> RemapManifest | None:
        path = dst / MANIFEST
        if not path.exists():
            return None
        try:
            data = json.loads(read_text(path, "remap manifest"))
        except json.JSONDecodeError as exc:
            raise HiersegError(f"{path}:{exc.lineno}: not a valid remap manifest ({exc.msg}); remap into a new "
                               "folder, or pass --overwrite to redo every file") from None
        except RecursionError:
            raise HiersegError(f"{path}: not a valid remap manifest (nested too deeply); remap into a new folder, or "
                               "pass --overwrite to redo every file") from None
        if (not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict)
                or not _is_int(data.get("started_ns"))):
            raise HiersegError(f"{path}: not a {FORMAT} manifest; remap into a new folder, or pass --overwrite")
        for rel, entry in data["files"].items():
            if not _valid_entry(entry):
                raise HiersegError(f"{path}: entry {rel!r} is not a remap record ({str(entry)[:60]}); the manifest "
                                   "is damaged: remap into a new folder, or pass --overwrite to redo every file")
        return cls(path, {k: data.get(k) for k in ("source", "target", "table")}, data["started_ns"],
                   data.get("unknown", "ignore"), data["files"])

    def to_json(self) -> str:
        head = {"format": FORMAT, "tool": _tool(), **self.recipe, "started_ns": self.started_ns, "unknown": self.unknown}
        return json.dumps({**head, "files": self.files}, indent=0) + "\n"

    def save(self, force: bool = True) -> None:
        now = time.monotonic()
        if force or now - self.saved_at >= SAVE_EVERY_S:
            atomic_write_text(self.path, self.to_json())
            self.saved_at = now


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not (_is_int(entry.get("size")) and _is_int(entry.get("mtime_ns"))):
        return False
    if not (entry.get("undefined") is None or _is_int(entry["undefined"])):
        return False
    output = entry.get("output")
    return output is None or (isinstance(output, dict) and _is_int(output.get("size"))
                              and _is_int(output.get("mtime_ns")))


def _decodes(output: Path) -> bool:
    from hierseg.taxonomy.annotations import read_label

    try:
        read_label(output)
    except HiersegError:
        return False
    return True


def _check(manifest: RemapManifest, entry: dict[str, Any] | None, source: dict[str, int], output: Path,
           unknown: str) -> tuple[str | None, dict[str, Any] | None]:
    """``(why the existing output cannot be kept, None when it can; its manifest entry)``."""
    written = snapshot(output)
    if entry is None:  # written after the last save of a killed run, or before this translation's manifest
        if written["mtime_ns"] < manifest.started_ns or source["mtime_ns"] > written["mtime_ns"]:
            return "unrecorded", None
        if unknown == "error" and manifest.unknown != "error":
            return "unrecorded", None
        if not _decodes(output):  # adopted on its times alone it could be any file: it must be a whole label PNG
            return "unrecorded", None
        entry = {**source, "undefined": 0 if manifest.unknown == "error" else None, "output": written}
    if {k: entry.get(k) for k in ("size", "mtime_ns")} != source:
        return "changed since its output was written", entry
    if entry.get("output") is None:  # recorded by an older hierseg, which did not note its output
        return "unrecorded", None
    if entry["output"] != written:
        return f"its output {output} was changed or truncated after remap wrote it", entry
    if unknown == "error" and entry.get("undefined") != 0:
        what = entry["undefined"] if entry.get("undefined") is not None else "some"
        return f"its output maps {what} undefined pixels to ignore (written with --unknown ignore)", entry
    return None, entry


def _no_link(dst: Path, rel: Path) -> None:
    """Outputs are checked, deleted and written below DST through real folders only: a link there is refused."""
    here = dst
    for part in Path(rel).parts:
        here = here / part
        if here.is_symlink():
            raise HiersegError(f"{here}: is a symbolic link inside the output folder {dst}; remap does not write "
                               "through links (remove it)")
        if not here.exists():
            return


def plan(translation: Translation, src: Path, dst: Path, files: list[Path], unknown: str, overwrite: bool,
         recodes: tuple[Any, ...] = ()) -> tuple[RemapManifest, list[Path], list[Path]]:
    """The manifest to continue, the files to (re)write and the files already done; refuses what it cannot trust.

    Outputs that will be redone because they are out of date are deleted first, so that an interrupted re-run
    never leaves a stale output looking like a finished one.
    """
    wanted = recipe(translation, recodes)
    try:
        manifest = RemapManifest.load(dst)
    except HiersegError:
        if not overwrite:
            raise
        manifest = None
    if manifest is None:
        found = [rel for rel in files if (dst / rel).exists()]
        if found and not overwrite:
            raise HiersegError(f"{dst}: holds {len(found)} label PNG(s) that no remap manifest describes (e.g. "
                               f"{found[0]}); remap into a new folder, or pass --overwrite to redo them")
        manifest = RemapManifest(dst / MANIFEST, wanted, time.time_ns(), unknown)
    elif manifest.recipe != wanted:
        if not overwrite:
            was = f"{manifest.recipe.get('source')} -> {manifest.recipe.get('target')}"
            now = f"{wanted['source']} -> {wanted['target']}"
            why = f"{was}, now {now}" if was != now else f"{was} with another lookup table (another tree)"
            raise HiersegError(f"{dst}: was remapped by another translation ({why}; {manifest.path}); remap into a "
                               "new folder, or pass --overwrite to redo every file")
        manifest = RemapManifest(dst / MANIFEST, wanted, time.time_ns(), unknown)  # no output predates it
    todo, done, stale = [], [], []
    for rel in files:
        output = dst / rel
        _no_link(dst, rel)
        if not output.exists():
            todo.append(rel)
            continue
        why, entry = _check(manifest, manifest.files.get(str(rel)), snapshot(src / rel), output, unknown)
        if why is None:
            manifest.files[str(rel)] = entry
            done.append(rel)
        elif why == "unrecorded":
            todo.append(rel)
        else:
            stale.append((rel, why))
    if stale and not overwrite:
        rel, why = stale[0]
        more = f" ({len(stale)} files in all)" if len(stale) > 1 else ""
        raise HiersegError(f"{src / rel}: {why}{more}; pass --overwrite to redo them")
    for rel, _ in stale:
        manifest.files.pop(str(rel), None)
        (dst / rel).unlink()
    manifest.unknown = unknown
    return manifest, todo + [rel for rel, _ in stale], done
