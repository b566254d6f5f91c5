"""Entrypoints named in prefect.yaml. Prefect loads this file as a script, so imports here are absolute."""

from flows.scan import nightly_scan

__all__ = ["nightly_scan"]
