"""Where a command's result goes: stdout, or a file written atomically."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from hierseg.core.io import atomic_write_bytes


def emit(data: bytes | str, out: Path | None) -> None:
    """Text to stdout when ``out`` is None; otherwise the bytes to ``out`` (atomically) and a note on stderr."""
    if out is None:
        sys.stdout.write(data.decode() if isinstance(data, bytes) else data)
        return
    atomic_write_bytes(out, data.encode() if isinstance(data, str) else data)
    typer.echo(f"wrote {out}", err=True)
