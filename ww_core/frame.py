"""A pandas convenience for notebooks, shaped like ``weightwatcher.WeightWatcher``: ``analyze()`` returns the
details DataFrame, ``get_summary()`` the model averages. pandas is imported only when this is used."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .analysis import analyze_model
from .records import LayerMetrics, summarize


def _named_tensors(model) -> Iterable[tuple[str, object]]:
    if isinstance(model, Mapping):
        return model.items()
    if hasattr(model, "state_dict"):
        return model.state_dict().items()
    return model


class Watcher:
    """``Watcher(model).analyze(**options)`` for a state dict, a ``torch.nn.Module``, or ``(name, tensor)`` pairs."""

    def __init__(self, model=None):
        self.model = model
        self.layers: list[LayerMetrics] = []

    def analyze(self, model=None, **options):
        import pandas as pd

        self.layers = list(analyze_model(_named_tensors(model if model is not None else self.model), **options))
        return pd.DataFrame([layer.as_row() for layer in self.layers])

    def get_details(self):
        import pandas as pd

        return pd.DataFrame([layer.as_row() for layer in self.layers])

    def get_summary(self) -> dict:
        """The averages of WeightWatcher's ``get_summary()`` over ok layers, plus layer counts."""
        return summarize(self.layers).as_dict()
