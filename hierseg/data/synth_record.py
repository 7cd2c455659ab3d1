"""What ``data synth`` wrote into a folder: ``OUT/.hierseg-synth.json``, its settings and every file with its size.

A synthetic dataset is written into a new or empty folder, never into another dataset: writing into one would
replace the files both have and keep the others, a mix that pairs up and reads like one dataset. A folder that holds
a dataset synth wrote with the very same settings may be written again (the same seed writes the same bytes);
another one is refused, or with ``overwrite`` replaced whole: every file its record lists is removed first. A
folder without a record is never touched. ``data check`` compares a folder with its record, so a mixed or
half-replaced dataset does not pass.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_text, read_text
from hierseg.core.jsontext import parse_json

RECORD = ".hierseg-synth.json"
FORMAT = "hierseg-synth/1"


def _files(out: Path) -> dict[str, int]:
    """Every file below ``out`` (no hidden ones, no links followed), relative path -> size."""
    found = {}
    for folder, dirs, names in os.walk(out):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if not name.startswith(".") and not path.is_symlink():
                found[path.relative_to(out).as_posix()] = path.stat().st_size
    return found


def _plain(rel: str) -> bool:
    """A path inside the folder: relative, no ``..`` (a record never names a file elsewhere to remove)."""
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts


def read_record(out: str | Path) -> dict[str, Any] | None:
    """The record of a folder synth wrote, None when there is none; a damaged one is an error naming it."""
    path = Path(out) / RECORD
    if not path.is_file():
        return None
    data = parse_json(read_text(path, "synth record"), str(path), "synth record")
    if (not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("settings"), dict)
            or not isinstance(data.get("files"), dict)
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in data["files"].values())
            or not all(_plain(rel) for rel in data["files"])):
        raise HiersegError(f"{path}: not a {FORMAT} record; the folder is damaged: synthesise into a new one")
    return data


def claim(out: str | Path, settings: dict[str, Any], overwrite: bool = False) -> None:
    """Make sure synth may write ``settings``' dataset into ``out`` (see the module's doc); with ``overwrite``,
    remove the dataset a record there lists."""
    out = Path(out)
    if not out.is_dir():
        return  # absent (created by the first write) or a file (the first write says so)
    found = _files(out)
    if not found and not (out / RECORD).exists():
        return
    record = read_record(out)
    if record is None:
        example = next(iter(sorted(found)), "")
        raise HiersegError(f"{out}: not empty ({len(found)} files, e.g. {example}) and not a folder data synth wrote; "
                           "synthesise into a new or empty folder")
    foreign = sorted(set(found) - set(record["files"]))
    if record["settings"] == settings and not foreign:
        return  # the same dataset again: the same bytes
    if not overwrite:
        was = ", ".join(f"{k} {v}" for k, v in record["settings"].items() if settings.get(k) != v)
        raise HiersegError(f"{out}: already holds a synthetic dataset ({was or 'other files'}); writing into it "
                           "would mix two datasets: choose a new folder, or pass --overwrite to replace it")
    if foreign:
        raise HiersegError(f"{out}: holds files data synth did not write (e.g. {foreign[0]}); --overwrite replaces "
                           "a synthetic dataset whole, not a folder with other files: choose a new folder")
    for rel in record["files"]:
        path = out / rel
        if any(p.is_symlink() for p in (path, *path.parents) if p != out and p.is_relative_to(out)):
            raise HiersegError(f"{path}: is or lies below a symbolic link; remove the folder by hand")
        path.unlink(missing_ok=True)
    (out / RECORD).unlink()
    for folder, _, _ in sorted(os.walk(out), key=lambda entry: -len(entry[0])):
        if Path(folder) != out and not any(Path(folder).iterdir()):
            Path(folder).rmdir()


def write_record(out: str | Path, settings: dict[str, Any], written: list[Path]) -> None:
    """Record what synth wrote into ``out`` (after its last file)."""
    out = Path(out)
    files = {Path(os.path.relpath(path, out)).as_posix(): path.stat().st_size for path in written}
    atomic_write_text(out / RECORD, json.dumps({"format": FORMAT, "settings": settings, "files": files},
                                              indent=1, sort_keys=True) + "\n")


def check_record(root: str | Path) -> list[str]:
    """The ways ``root`` differs from what synth wrote there (none without a record): files that are not the
    record's, missing, or of another size."""
    root = Path(root)
    record = read_record(root)
    if record is None:
        return []
    found, listed = _files(root), record["files"]
    extra = sorted(set(found) - set(listed))
    missing = sorted(set(listed) - set(found))
    changed = sorted(rel for rel in set(found) & set(listed) if found[rel] != listed[rel])
    problems = []
    if extra:
        problems.append(f"{root}: {len(extra)} files synth did not write there (e.g. {extra[0]}): a mix of two "
                        f"datasets? ({RECORD} lists what it wrote)")
    if missing:
        problems.append(f"{root}: {len(missing)} files synth wrote are gone (e.g. {missing[0]})")
    if changed:
        problems.append(f"{root}: {len(changed)} files changed size since synth wrote them (e.g. {changed[0]})")
    return problems
