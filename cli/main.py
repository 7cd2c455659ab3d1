"""The ``hierseg`` command line: thin typer commands over the library."""

from __future__ import annotations

import sys

import typer

from hierseg.cli import evaluate, train
from hierseg.cli.data import app as data_app
from hierseg.cli.labels import app as labels_app
from hierseg.cli.models import app as models_app
from hierseg.cli.taxonomy import app as taxonomy_app
from hierseg.taxonomy.errors import HiersegError

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


def main() -> None:
    """Console entry point: a :class:`HiersegError` becomes ``error: ...`` on stderr and exit code 2."""
    try:
        app()
    except HiersegError as exc:
        for line in getattr(exc, "problems", None) or [str(exc)]:  # a ProblemList: one line per problem
            print(f"error: {line}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
