"""Entrypoints named in prefect.yaml. Prefect loads this file as a script, so imports here are absolute."""

from flows.nightly import nightly_scan

__all__ = ["nightly_scan"]
