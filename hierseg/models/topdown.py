"""Top-down hierarchical inference over DSSPN's neuron head, following a :class:`DecisionPlan`.

Two rules, both confined to the plan's allowed outputs (so both can output exactly the plan's terminal concepts):

- :func:`greedy` (the paper, 3.3): from the root, each neuron a pixel reaches sends it to its most probable allowed
  output; only neurons some pixel reaches run, each on the images where it is reached.
- :func:`best_path`: per pixel, the terminal concept whose decisions have the highest product of conditional
  probabilities, computed as a sum of log-probabilities. An early, unsure decision no longer fixes the answer: a
  confident choice deeper down can outweigh it. Every reachable neuron runs on every image.

Both upsample a neuron's logits to the output size before deciding, as a flat head upsamples its scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hierseg.models.neuron_head import NeuronHead, Propagation
from hierseg.taxonomy.decisions import DecisionPlan

INFERENCE_RULES = ("greedy", "path")


@dataclass(frozen=True)
class PlanTensors:
    """A :class:`DecisionPlan`'s tables on one device."""

    plan: DecisionPlan
    settle: torch.Tensor
    stop: torch.Tensor
    allowed: torch.Tensor
    target: torch.Tensor
    is_self: torch.Tensor
    concept: torch.Tensor
    label: torch.Tensor

    @classmethod
    def of(cls, plan: DecisionPlan, device: torch.device) -> PlanTensors:
        arrays = (plan.settle, plan.stop, plan.allowed, plan.target, plan.is_self, plan.concept, plan.label)
        return cls(plan, *(torch.tensor(a, device=device) for a in arrays))


def _logits(head: NeuronHead, n: int, root: torch.Tensor, prop: Propagation, rows: np.ndarray,
            positions: dict[int, np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    logits = head.run(n, root, prop, rows, positions)
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def greedy(head: NeuronHead, h0: torch.Tensor, size: tuple[int, int], plan: PlanTensors) -> torch.Tensor:
    """``(B, *size)`` concept indices: each pixel follows its neurons' most probable allowed outputs."""
    state = torch.full((h0.shape[0], *size), plan.plan.start, dtype=torch.long, device=h0.device)
    done = plan.stop[state]
    prop, positions = Propagation(), {}
    root = head.root(h0)
    for neuron in head.graph.neurons:
        n = neuron.index
        here = (state == int(plan.concept[n])) & ~done
        reached = here.flatten(1).any(1).cpu().numpy()
        if not reached.any():
            continue
        # Every image that reaches a neuron reached its ancestors, so their features cover these rows.
        rows = np.flatnonzero(reached)
        logits = _logits(head, n, root, prop, rows, positions, size)
        width = len(neuron.outputs)
        choice = head.log_probs(logits, plan.allowed[n, :width]).argmax(1)
        index = torch.as_tensor(rows, device=h0.device)
        sub_here = here[index]
        nxt = plan.settle[plan.target[n, :width][choice]]
        finished = plan.is_self[n, :width][choice] | plan.stop[nxt]
        state[index] = torch.where(sub_here, nxt, state[index])
        done[index] |= sub_here & finished
    return state


def best_path(head: NeuronHead, h0: torch.Tensor, size: tuple[int, int], plan: PlanTensors) -> torch.Tensor:
    """``(B, *size)`` concept indices: per pixel, the terminal concept of highest summed log-probability."""
    batch = h0.shape[0]
    best_concept = torch.full((batch, *size), plan.plan.start, dtype=torch.long, device=h0.device)
    if bool(plan.plan.stop[plan.plan.start]):
        return best_concept
    neuron_at = {int(c): n for n, c in enumerate(plan.plan.concept)}
    best = torch.full((batch, *size), float("-inf"), device=h0.device)
    # log-probability of reaching each neuron's concept, per pixel; filled by the parent, used once
    prefix = {neuron_at[plan.plan.start]: torch.zeros((batch, *size), device=h0.device)}
    prop, positions = Propagation(), {}
    root = head.root(h0)
    rows = np.arange(batch)
    for neuron in head.graph.neurons:  # depth order: a neuron's prefix is complete before it runs
        n = neuron.index
        if n not in prefix:
            continue
        width = len(neuron.outputs)
        logp = head.log_probs(_logits(head, n, root, prop, rows, positions, size), plan.allowed[n, :width])
        base = prefix.pop(n)
        for k in np.flatnonzero(plan.plan.allowed[n, :width]):
            score = base + logp[:, k]
            if plan.plan.is_self[n, k]:
                concept = int(plan.plan.concept[n])
            else:
                concept = int(plan.plan.settle[plan.plan.target[n, k]])
                if not plan.plan.stop[concept]:
                    prefix[neuron_at[concept]] = score
                    continue
            better = score > best
            best = torch.where(better, score, best)
            best_concept = best_concept.masked_fill(better, concept)
    return best_concept
