"""Errors of weight files. Every message names the file and says what is wrong."""

from __future__ import annotations


class WeightsError(Exception):
    """A weight file is missing, corrupt or truncated. The message names the file."""


class UnsupportedWeights(WeightsError):
    """The model has weights, but none that may be analyzed as asked (e.g. only pickles and --no-pickle)."""
