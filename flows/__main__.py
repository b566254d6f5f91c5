"""``python -m flows`` is ``wwhub``."""

from flows.cli import run

run()
