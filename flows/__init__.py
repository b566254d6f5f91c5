"""flows: the Prefect flows of wwhub and the adapters they use (hub, local files, lake, plots, CLI)."""

__version__ = "0.1.0"
