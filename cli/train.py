"""Placeholder: `hierseg train` and `hierseg plot` are being written."""

from __future__ import annotations


def train() -> None:
    """Train a model from a YAML config."""


def plot() -> None:
    """Draw a run's training curves."""
