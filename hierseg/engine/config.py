"""Typed training configs: pydantic models read from YAML, with ``--set a.b=c`` overrides.

A config has the sections ``model``, ``data``, ``schedule``, ``optim``, ``finetune``, ``init``, ``eval``, ``run``
and ``output`` (see :class:`TrainConfig`). Every value is checked before anything runs; a bad one is a one-line
:class:`HiersegError` ``FILE: field.path: reason``. Overrides are parsed with the same YAML loader and merged into
the file's mapping before validation, so they are checked exactly like the file. Relative paths are relative to
the working directory.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hierseg.core.errors import HiersegError
from hierseg.core.io import read_text
from hierseg.core.yamltext import load_yaml, split_assignment, yaml_line, yaml_problem
from hierseg.taxonomy.specs import DATASETS
from hierseg.taxonomy.tree import Taxonomy

# A built-in dataset, or one added to the tree the model names (model.kwargs.taxonomy, `taxonomy build --add`).
DatasetName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class FieldError(ValueError):
    """A cross-field problem that names the field it is about (``loc`` relative to the validated model)."""

    def __init__(self, loc: str, message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode takes `steps: true` as 1 step and `lr_head: true` as 1.0; here true is only a boolean
        numbers = _numbers(cls.model_fields[info.field_name].annotation)
        if isinstance(value, bool) and numbers:
            raise ValueError(f"expected a {'whole number' if numbers == {int} else 'number'}, not {str(value).lower()}")
        return value


def _numbers(annotation: Any) -> set[type]:
    """``{int}``, ``{float}`` (or both) when a field takes numbers and no booleans; empty otherwise."""
    args = {annotation, *typing.get_args(annotation)}
    return set() if bool in args or Any in args else {a for a in args if a in (int, float)}


class ModelConfig(Section):
    name: str = Field(min_length=1, description="registered model name (`hierseg models list`)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="create_model keyword arguments")
    backbone_weights: str | None = Field(None, min_length=1, description="ImageNet weights for the backbone: a local "
                                         "checkpoint, timm/<name> or hf-hub:<org>/<repo> (Hugging Face hub or cache)")

    _taxonomy: Taxonomy | None = PrivateAttr(None)

    @field_validator("kwargs")
    @classmethod
    def _no_weights_in_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "backbone_weights" in kwargs:
            raise FieldError("backbone_weights", "set model.backbone_weights, not model.kwargs.backbone_weights")
        return kwargs

    def taxonomy(self) -> Taxonomy:
        """The tree the model is built on: the file ``kwargs.taxonomy`` names (the shipped tree without one), read
        once, by whichever of the config's checks and the run's preflight asks first."""
        if self._taxonomy is None:
            self._taxonomy = Taxonomy.load(self.kwargs.get("taxonomy"))
        return self._taxonomy


class DatasetConfig(Section):
    name: DatasetName
    root: Path
    split: str | None = Field(None, description="default: the layout's training split")
    weight: float | None = Field(None, ge=0, description="sampling weight; none anywhere = every sample once per epoch")
    crop: int = Field(513, ge=32, le=8192)
    batch_size: int = Field(8, ge=1, le=4096,
                            description="per process; in joint training each batch holds its dataset's size")
    scale: tuple[float, float] = (0.5, 2.0)
    flip: float = Field(0.5, ge=0, le=1)

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, scale: tuple[float, float]) -> tuple[float, float]:
        if not 0 < scale[0] <= scale[1] <= 16:
            raise ValueError(f"needs 0 < low <= high <= 16, got {list(scale)}")
        return scale


class DataConfig(Section):
    datasets: list[DatasetConfig] = Field(min_length=1)
    workers: int = Field(4, ge=0, le=256, description="DataLoader worker processes per training process")
    on_error: Literal["raise", "skip"] = Field("raise", description="a broken sample stops the run (raise), or is "
                                                                     "reported once, counted and replaced (skip)")

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        seen: set[str] = set()
        for i, d in enumerate(self.datasets):
            if d.name in seen:
                raise FieldError(f"datasets.{i}.name", f"{d.name} is listed twice")
            seen.add(d.name)
        weighted = [d.weight is not None for d in self.datasets]
        if any(weighted) and not all(weighted):
            i = weighted.index(False)
            raise FieldError(f"datasets.{i}.weight", "give every dataset a weight, or none (natural sizes)")
        if all(weighted) and sum(d.weight or 0 for d in self.datasets) <= 0:
            raise FieldError("datasets.0.weight", "the weights sum to 0")
        return self

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.datasets]


def _one_length(section: ScheduleConfig | FinetuneConfig) -> None:
    if (section.epochs is None) == (section.steps is None):
        raise FieldError("epochs", "give exactly one of epochs or steps")


class ScheduleConfig(Section):
    epochs: int | None = Field(None, ge=1)
    steps: int | None = Field(None, ge=1, description="optimiser steps (instead of epochs)")
    steps_per_epoch: int | None = Field(None, ge=1, description="default: every sample once (natural sizes)")

    @model_validator(mode="after")
    def _length(self) -> ScheduleConfig:
        _one_length(self)
        return self


class FinetuneConfig(Section):
    """Per-dataset fine-tuning after joint training (DSSPN 4.3): one checkpoint per dataset."""

    epochs: int | None = Field(None, ge=1)
    steps: int | None = Field(None, ge=1)
    lr_factor: float = Field(0.1, gt=0)
    datasets: list[DatasetName] | None = Field(None, description="default: every dataset of data.datasets")

    @model_validator(mode="after")
    def _length(self) -> FinetuneConfig:
        _one_length(self)
        return self


class OptimConfig(Section):
    lr_head: float = Field(0.003, gt=0)
    lr_backbone: float = Field(0.00003, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0001, ge=0)
    power: float = Field(0.9, ge=0, description="poly schedule: lr * (1 - step/total) ** power")
    accumulate: int = Field(1, ge=1, description="batches per optimiser step")


class InitConfig(Section):
    backbone_from: Path | None = Field(None, description="a hierseg checkpoint whose backbone.* weights start this run")


class EvalConfig(Section):
    """Validation during training (:class:`hierseg.engine.validation.PeriodicEval`): each stage's datasets on their
    ``split`` under the training root, every ``every`` steps and after a stage's last step."""

    every: int = Field(0, ge=0, description="steps between validations; 0: none")
    split: str = Field("val", min_length=1, description="the split of each data.datasets[].root validated on")
    limit: int | None = Field(None, ge=1, description="the first N images of each split (default: all)")
    batch_size: int = Field(1, ge=1, le=4096)
    best: str | None = Field(None, min_length=1, description="keep best.pt by this metric of the validation, higher "
                             "is better (lower for severity/mean): DATASET/mIoU, mean/mIoU (over the stage's "
                             "datasets), DATASET/pixel_acc, ...")

    @model_validator(mode="after")
    def _best_needs_every(self) -> EvalConfig:
        if self.best is not None and self.every == 0:
            raise FieldError("best", "best.pt is chosen by periodic validation; set eval.every too")
        return self


class RunConfig(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on CUDA, fp32 on CPU")
    channels_last: bool | None = Field(None, description="default: on CUDA only")
    compile: bool = False
    seed: int = Field(0, ge=0, le=2**63 - 1, description="torch seeds are 64-bit")


class OutputConfig(Section):
    dir: Path
    log_every: int = Field(10, ge=1, description="steps between progress lines (metrics are written every step)")
    checkpoint_every: int = Field(1000, ge=0, description="steps between resume checkpoints; 0: end of stages only")
    tensorboard: bool = Field(False, description="also log to RUN_DIR/tensorboard (needs the tensorboard package)")


class TrainConfig(Section):
    model: ModelConfig
    data: DataConfig
    schedule: ScheduleConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    finetune: FinetuneConfig | None = None
    init: InitConfig = Field(default_factory=InitConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    output: OutputConfig

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        self._known_datasets()
        if self.finetune is not None:
            if len(self.data.datasets) < 2:
                raise FieldError("finetune", "per-dataset fine-tuning follows joint training on several datasets; "
                                             "data.datasets has one (use init.backbone_from to start from another run)")
            for i, name in enumerate(self.finetune.datasets or []):
                if name not in self.data.names:
                    raise FieldError(f"finetune.datasets.{i}", f"{name} is not one of data.datasets "
                                                               f"({', '.join(self.data.names)})")
        return self

    def _known_datasets(self) -> None:
        """Every dataset is built in, or one the tree in model.kwargs.taxonomy carries (read here when it exists)."""
        names = [(f"data.datasets.{i}.name", d.name) for i, d in enumerate(self.data.datasets)]
        if self.finetune is not None:
            names += [(f"finetune.datasets.{i}", n) for i, n in enumerate(self.finetune.datasets or [])]
        unknown = [(loc, n) for loc, n in names if n not in DATASETS]
        if not unknown:
            return
        tree = self.model.kwargs.get("taxonomy")
        if not isinstance(tree, str | Path):
            loc, name = unknown[0]
            raise FieldError(loc, f"{name!r} is not a built-in dataset ({', '.join(DATASETS)}); a dataset added with "
                                  "`hierseg taxonomy build --add` needs its tree in model.kwargs.taxonomy")
        if not Path(tree).is_file():
            return  # not built yet (a shipped config): the run's preflight reads the tree and checks again
        try:
            covered = self.model.taxonomy().datasets
        except HiersegError as exc:
            raise FieldError("model.kwargs.taxonomy", str(exc)) from None
        for loc, name in unknown:
            if name not in covered:
                raise FieldError(loc, f"{name!r} is not a dataset of the tree {tree} ({', '.join(covered)})")


# ---------------------------------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read ``path``, apply ``--set`` overrides (``a.b=value``), validate; errors name the file and field."""
    path = Path(path)
    try:
        raw = load_yaml(read_text(path, "config file"))
    except yaml.YAMLError as exc:
        line = yaml_line(exc)
        where = f"line {line}: " if line is not None else ""
        raise HiersegError(f"{path}: {where}not valid YAML ({yaml_problem(exc)})") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise HiersegError(f"{path}: a config is a mapping of sections (model, data, schedule, ...), "
                           f"not a {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item, source=str(path))
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise HiersegError(f"{source}: {describe_error(exc.errors()[0])}") from None


def apply_override(raw: dict[str, Any], item: str, source: str = "config") -> None:
    """``a.b.0.c=value`` into ``raw`` (list items by index); the value is YAML, so ``x=1e-3`` is a number."""
    split = split_assignment(item)
    if split is None:
        raise HiersegError(f"--set {item!r}: expected KEY=VALUE, e.g. --set optim.lr_head=0.01")
    key, text = split
    try:
        value = load_yaml(text)
    except yaml.YAMLError as exc:
        raise HiersegError(f"--set {key}: value {text!r} is not valid YAML ({yaml_problem(exc)})") from None
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the config"
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise HiersegError(f"{source}: {key}: {where} is a list of {len(node)}; use an index 0..{len(node) - 1}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                continue
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise HiersegError(f"{source}: {key}: {where} is a value, not a section")


def describe_error(error: dict[str, Any]) -> str:
    """``field.path: reason`` for one pydantic error."""
    loc = [str(p) for p in error["loc"]]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        loc += cause.loc.split(".")  # validators of the root have an empty loc, so cause.loc is absolute there
        message = cause.message
    elif error["type"] == "extra_forbidden":
        allowed = _field_names(error["loc"][:-1])
        message = "unknown field" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    elif error["type"] == "missing":
        message = "required field is missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
    return f"{'.'.join(loc) or 'config'}: {message}"


def _field_names(loc: Sequence[str | int]) -> list[str]:
    """Field names of the section at ``loc`` (list indices skipped), for the 'unknown field' message."""
    model: Any = TrainConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        model = _section_type(model.model_fields[part].annotation)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _section_type(annotation: Any) -> Any:
    """The BaseModel inside ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The dotted path of the first value that differs between two JSON-like trees (None when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}.{i}")
            if found is not None:
                return found
        return None
    return None if a == b else (path or "config")
