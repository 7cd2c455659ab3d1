"""CSV rows read from files the user hands over (label tables, MSeg's master taxonomy, spec tables).

The ``csv`` module raises ``csv.Error`` (not a ``ValueError``) for a field over its 128 KiB limit or a NUL byte;
here that is one :class:`HiersegError` naming the file and line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from hierseg.core.errors import HiersegError


def csv_rows(reader: Iterable[Any], source: str) -> Iterator[Any]:
    """The rows of ``reader`` (a ``csv.reader`` or ``DictReader``); a row the module cannot parse is an error."""
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            line = getattr(getattr(reader, "reader", reader), "line_num", None)  # a DictReader's lags a row behind
            raise HiersegError(f"{source}{f':{line}' if line else ''}: not a readable CSV row ({exc})") from None
        yield row
