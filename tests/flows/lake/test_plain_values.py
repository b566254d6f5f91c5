"""Plain values: every type a DuckDB query returns becomes a JSON value (no internal error on an export)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal

import numpy as np
import pytest

from flows.lake.plain_values import iso_duration, plain_value


@pytest.mark.parametrize(
    "value, plain",
    [
        (Decimal("1.5"), 1.5),
        (Decimal("-0.125"), -0.125),
        (dt.time(1, 2, 3), "01:02:03"),
        (dt.time(1, 2, 3, tzinfo=dt.timezone(dt.timedelta(hours=2))), "01:02:03+02:00"),
        (dt.datetime(2024, 5, 6, 7, 8, 9), "2024-05-06T07:08:09"),
        (dt.date(2024, 5, 6), "2024-05-06"),
        (uuid.UUID("8a4c5c36-5b4f-4f0e-9a43-2d1f8c0e6b1a"), "8a4c5c36-5b4f-4f0e-9a43-2d1f8c0e6b1a"),
        (b"\x00ab", "AGFi"),  # base64
        (dt.timedelta(days=1), "P1D"),
        (float("nan"), None),
        (math.inf, None),
        (np.float32(0.5), 0.5),
        ([Decimal("1.5"), None, float("nan")], [1.5, None, None]),
        ((1, 2), [1, 2]),  # an ARRAY column
        ({"k": Decimal("2.5")}, {"k": 2.5}),  # a STRUCT
        ({Decimal("1.5"): b"\x00"}, {1.5: "AA=="}),  # a MAP with DECIMAL keys
        ({uuid.UUID(int=1): 1}, {"00000000-0000-0000-0000-000000000001": 1}),
    ],
)
def test_every_duckdb_type_becomes_a_json_value(value, plain):
    assert plain_value(value) == plain
    json.dumps(plain_value(value))  # JSON-able


@pytest.mark.parametrize(
    "delta, iso",
    [
        (dt.timedelta(0), "PT0S"),
        (dt.timedelta(days=420), "P420D"),  # INTERVAL 14 MONTH: DuckDB gives Python 30 days a month
        (dt.timedelta(hours=1, minutes=30, microseconds=1), "PT1H30M0.000001S"),
        (dt.timedelta(days=2, seconds=4, microseconds=500_000), "P2DT4.5S"),
        (dt.timedelta(seconds=-1), "-PT1S"),
        (-dt.timedelta(days=1, hours=2), "-P1DT2H"),
    ],
)
def test_an_interval_is_an_iso_8601_duration(delta, iso):
    assert iso_duration(delta) == iso
