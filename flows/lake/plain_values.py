"""Plain, serializable values for exports (JSON, CSV)."""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from decimal import Decimal


def plain_value(value):
    """JSON-able plain value of what DuckDB or numpy returns: NaN/Inf become null; DECIMAL a float; datetimes,
    dates and TIME ISO 8601; INTERVAL an ISO 8601 duration (``iso_duration``); UUID its text; BLOB base64 text;
    numpy scalars Python numbers; LIST, ARRAY, STRUCT and MAP values with their items made plain (a MAP's keys
    text unless plain JSON keys already)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        # A JSON number as readers hold it (a double): DECIMAL(38, s) keeps its 15-17 leading digits.
        return plain_value(float(value))
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {_plain_key(k): plain_value(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return plain_value(value.item())
    return value


def _plain_key(key):
    key = plain_value(key)
    return key if isinstance(key, str | int | float | bool) or key is None else str(key)


def iso_duration(delta: dt.timedelta) -> str:
    """``delta`` as an ISO 8601 duration: ``P1DT2H3M4.5S``, ``PT0S``, ``-PT1S``. DuckDB hands an INTERVAL's
    months to Python as 30 days each, so ``INTERVAL 14 MONTH`` is ``P420D``."""
    sign = "-" if delta < dt.timedelta(0) else ""
    delta = abs(delta)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second = f"{seconds}.{delta.microseconds:06d}".rstrip("0") if delta.microseconds else str(seconds)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    time += f"{second}S" if seconds or delta.microseconds else ""
    days = f"{delta.days}D" if delta.days else ""
    if not days and not time:
        return "PT0S"
    return f"{sign}P{days}" + (f"T{time}" if time else "")
