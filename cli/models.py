"""``hierseg models list | info``: the model zoo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hierseg.cli.choices import Format, ProjectionRule
from hierseg.core.errors import HiersegError

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
    taxonomy: Annotated[Path | None, typer.Option(help="A superset of the model's tree (taxonomy build --add): "
                                                  "--dataset may be a dataset it added; reports the labels the "
                                                  "model, trained on its own tree, can never output there.")] = None,
    projection: Annotated[ProjectionRule, typer.Option(help="The rule of hierseg eval --projection that the "
                                                       "reachable labels are worked out for.")] = ProjectionRule.sum,
) -> None:
    """Build a model (on the meta device by default) and report its parameter counts and structure."""
    from rich.console import Console
    from rich.table import Table

    from hierseg.core.yamltext import parse_overrides
    from hierseg.models.registry import model_info

    overrides = parse_overrides(set_ or [])
    if overrides.get("taxonomy") is not None:  # --set taxonomy=TREE.json: the model is given the tree, not a path
        from hierseg.taxonomy.tree import Taxonomy

        overrides["taxonomy"] = Taxonomy.load(str(overrides["taxonomy"]))
    if taxonomy is not None:
        data = _zero_shot_info(name, overrides, dataset, device, taxonomy, projection.value)
    else:
        data = model_info(name, overrides, dataset, device)
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


def _zero_shot_info(name: str, overrides: dict, dataset: str | None, device: str, path: Path, rule: str) -> dict:
    """``models info`` of the model built on its own tree, with what it can reach in ``dataset`` of ``path``'s tree."""
    from hierseg.engine.zero_shot import Projection
    from hierseg.models.registry import model_info
    from hierseg.taxonomy.tree import Taxonomy

    if dataset is None:
        raise HiersegError("--taxonomy reports what a model can reach in one dataset: give --dataset")
    extended = Taxonomy.load(path)
    if dataset not in extended.datasets:
        raise HiersegError(f"{path}: dataset {dataset!r} is not in this tree (it covers {', '.join(extended.datasets)})")
    from hierseg.models.registry import build

    model = build(name, overrides, device)  # on its own tree: the shipped one, or --set taxonomy=...
    data = model_info(name, overrides, None, device)
    try:
        reach = Projection(model, dataset, extended, rule).reach
    except HiersegError as exc:
        raise HiersegError(f"{path}: {exc}") from None
    lost = {u.id for u in reach.unreachable}
    data.update(projection=rule, target_labels=len(reach.labels), reachable_labels=len(reach.labels) - len(lost),
                unreachable_labels=[f"{u.id} {u.name} ({u.concept}): {u.reason}" for u in reach.unreachable])
    return data
