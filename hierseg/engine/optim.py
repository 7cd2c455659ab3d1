"""SGD with two learning rates (pretrained backbone, new head) and the "poly" schedule (DSSPN 4.1, after DeepLab)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.optim import SGD, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from hierseg.core.errors import HiersegError
from hierseg.engine.config import OptimConfig


@dataclass(frozen=True)
class Poly:
    """``(1 - step / total) ** power``; a class rather than a lambda so the scheduler's state can be pickled."""

    total: int
    power: float

    def __call__(self, step: int) -> float:
        return max(0.0, 1.0 - min(step, self.total) / self.total) ** self.power


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr_factor: float = 1.0) -> SGD:
    """SGD over ``model.param_groups()``: ``lr_backbone`` for ``backbone``, ``lr_head`` for ``head``.

    Frozen parameters (``requires_grad=False``) are left out; ``lr_factor`` scales both (fine-tuning uses 0.1).
    """
    groups = model.param_groups()
    unknown = sorted(set(groups) - {"backbone", "head"})
    if unknown:
        raise HiersegError(f"{type(model).__name__}.param_groups() returned group {unknown[0]!r}; "
                           "expected 'backbone' and 'head'")
    lrs = {"backbone": cfg.lr_backbone * lr_factor, "head": cfg.lr_head * lr_factor}
    param_groups = []
    for name in ("backbone", "head"):
        params = [p for p in groups.get(name, []) if p.requires_grad]
        if params:
            param_groups.append({"params": params, "lr": lrs[name], "name": name})
    if not param_groups:
        raise HiersegError(f"{type(model).__name__} has no trainable parameters")
    return SGD(param_groups, lr=cfg.lr_head * lr_factor, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def poly_scheduler(optimizer: Optimizer, total_steps: int, power: float) -> LambdaLR:
    return LambdaLR(optimizer, Poly(total_steps, power))


def learning_rates(optimizer: Optimizer) -> dict[str, float]:
    """Current rate of each named group: ``{"backbone": ..., "head": ...}``."""
    return {g.get("name", str(i)): float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}
