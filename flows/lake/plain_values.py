"""Plain, serializable values for exports (JSON, CSV)."""

from __future__ import annotations

import datetime as dt
import math


def plain_value(value):
    """JSON-able plain value: NaN/Inf become null, datetimes ISO 8601, numpy scalars Python numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "item"):
        return plain_value(value.item())
    return value
