"""The ``hierseg`` command line: thin typer commands over the library."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from typing import Any

import typer

from hierseg.cli import evaluate, train
from hierseg.cli.data import app as data_app
from hierseg.cli.labels import app as labels_app
from hierseg.cli.models import app as models_app
from hierseg.cli.taxonomy import app as taxonomy_app
from hierseg.core.errors import HiersegError, one_line
from hierseg.core.io import os_cause

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Hierarchical, multi-dataset semantic segmentation.")
app.add_typer(taxonomy_app, name="taxonomy")
app.add_typer(labels_app, name="labels")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.command("train")(train.train)
app.command("plot")(train.plot)
app.command("eval")(evaluate.evaluate)
app.command("predict")(evaluate.predict)


class Terminated(BaseException):
    """SIGTERM in the main process: unwinds like Ctrl-C, so every ``finally`` runs (worker pools are terminated,
    manifests and logs are closed, temporaries removed). A ``BaseException``, so no ``except Exception`` eats it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate_handler(owner: int):
    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked worker inherited this handler: end quietly, as SIGTERM normally does
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated(signum)

    return handler


def _warning_line(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    return f"warning: {one_line(str(message))}\n"


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return one_line(super().format(record))


def error_line(exc: BaseException) -> str:
    """The one line the CLI prints for an exception that is the user's or the environment's, not a bug."""
    if isinstance(exc, OSError):
        where = ": ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        return f"{where}: {os_cause(exc)}" if where else os_cause(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
    return str(exc)


def _log_to_stderr() -> None:
    """The library logs (``logging.getLogger(__name__)``); the command shows its INFO lines and above on stderr, as
    plain messages."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("%(message)s"))
    logger = logging.getLogger("hierseg")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main() -> None:
    """Console entry point: a :class:`HiersegError`, an OS fault (permission, read-only or full file system, a folder
    where a file belongs) or undecodable text becomes ``error: ...`` on stderr and exit code 2; SIGTERM unwinds and
    exits 143."""
    warnings.formatwarning = _warning_line
    _log_to_stderr()
    if hasattr(signal, "SIGTERM") and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_handler(os.getpid()))
    try:
        app()
    except (HiersegError, OSError, UnicodeDecodeError) as exc:
        for line in getattr(exc, "problems", None) or [error_line(exc)]:  # a ProblemList: one line per problem
            print(f"error: {one_line(line)}", file=sys.stderr)
        sys.exit(2)
    except Terminated as exc:
        print(f"interrupted by {signal.Signals(exc.signum).name}", file=sys.stderr)
        sys.exit(128 + exc.signum)


if __name__ == "__main__":
    main()
