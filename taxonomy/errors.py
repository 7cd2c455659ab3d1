"""The error type, re-exported from its home :mod:`hierseg.core.errors` for code written against this path."""

from hierseg.core.errors import HiersegError, ProblemList

__all__ = ["HiersegError", "ProblemList"]
