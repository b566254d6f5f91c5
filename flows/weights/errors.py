"""Errors of weight files. Every message names the file and says what is wrong."""

from __future__ import annotations


class WeightsError(Exception):
    """A weight file is missing, corrupt or truncated. The message names the file."""


class UnsupportedWeights(WeightsError):
    """The model has weights, but none that may be analyzed as asked (e.g. only pickles and --no-pickle)."""


class UndecodableWeights(WeightsError):
    """The stored values of a matrix show what its plan could not: it cannot be decoded honestly (packed codes that
    do not fit the width its config implies). The matrix is a ``skipped`` row with this message as its reason, as a
    spec's ``skip_reason`` makes one; where no row is made, it is a WeightsError like any other."""
