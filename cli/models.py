"""``hierseg models list | info``: the model zoo."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hierseg.cli.choices import Format

app = typer.Typer(no_args_is_help=True, help="The model zoo: list the registered models, report their structure.")


@app.command("list")
def list_(pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'dsspn_*'.")] = "*") -> None:
    """Registered model names, one per line, with their family."""
    from hierseg.models.registry import list_models, model_family

    for name in list_models(pattern):
        typer.echo(f"{name}\t{model_family(name)}")


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="Registered model name (see `hierseg models list`).")],
    dataset: Annotated[str | None, typer.Option(help="Dataset to report for: a flat model is built for it; "
                                                "DSSPN reports the neurons it supervises.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Model argument override key=value "
                                                   "(value read as YAML); repeatable.")] = None,
    format: Annotated[Format, typer.Option("--format", help="table or json (csv: one key,value row each).")] = Format.table,
    device: Annotated[str, typer.Option(help="meta (no memory) or cpu.")] = "meta",
) -> None:
    """Build a model (on the meta device by default) and report its parameter counts and structure."""
    from rich.console import Console
    from rich.table import Table

    from hierseg.core.yamltext import parse_overrides
    from hierseg.models.registry import model_info

    data = model_info(name, parse_overrides(set_ or []), dataset, device)
    if format is Format.json:
        typer.echo(json.dumps(data, indent=2))
    elif format is Format.csv:
        typer.echo("key,value")
        for key, value in data.items():
            typer.echo(f"{key},{value}")
    else:
        table = Table(title=name, show_header=False)
        for key, value in data.items():
            table.add_row(key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
        Console().print(table)
