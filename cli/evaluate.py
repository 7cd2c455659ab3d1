"""Placeholder: `hierseg eval` and `hierseg predict` are being written."""

from __future__ import annotations


def evaluate() -> None:
    """Evaluate a checkpoint on a dataset."""


def predict() -> None:
    """Predict label maps for images."""
