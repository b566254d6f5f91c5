"""The lake's manifest types, names and error: a leaf module every other lake module may import.

``manifest.json`` is a :class:`Snapshot`: every table's :class:`Segment` files and the keys hidden in each. Writing
and locking are flows/lake/store.py's; views over a snapshot are flows/lake/views.py's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from pathlib import Path

from .schema import SCHEMAS, TABLES

LAYOUT_VERSION = 2
MANIFEST = "manifest.json"
VIEWS_SQL = "views.sql"
DATA = "data"
WRITER_LOCK = ".lock"
COMPACTION_LOCK = ".compact.lock"
ROW_GROUP_ROWS = 256 * 1024


class LakeError(ValueError):
    """A lake that cannot be used as asked (missing, not a lake, read-only, a bad import): one line for the user."""


@dataclasses.dataclass
class Segment:
    """One immutable Parquet file of a table, with what a writer needs to know without opening it."""

    file: str  # relative to the lake root, '/'-separated
    rows: int
    bytes: int
    repo_min: str | None = None
    repo_max: str | None = None
    schema: str = ""  # fingerprint of the columns it was written with
    hidden: list[dict] = dataclasses.field(default_factory=list)  # keys whose rows are no longer visible

    def may_hold(self, repo_id: str | None) -> bool:
        if self.repo_min is None or repo_id is None:
            return True
        return self.repo_min <= repo_id <= self.repo_max


@dataclasses.dataclass
class Snapshot:
    """What one reader sees: every table's segments at one manifest version."""

    root: Path
    version: int
    tables: dict[str, list[Segment]]
    updated_at: str | None = None
    retired: list[dict] = dataclasses.field(default_factory=list)
    layout: int = LAYOUT_VERSION

    def to_json(self) -> dict:
        return {
            "layout": self.layout,
            "version": self.version,
            "updated_at": self.updated_at,
            # Shallow, not dataclasses.asdict: that deep-copies every hidden key, 13 ms a commit in a lake whose
            # history hides a few hundred.
            "tables": {t: [s.__dict__.copy() for s in segs] for t, segs in self.tables.items()},
            "retired": self.retired,
        }

    @classmethod
    def from_json(cls, root: Path, data: dict) -> Snapshot:
        tables = {t: [Segment(**s) for s in data.get("tables", {}).get(t, [])] for t in TABLES}
        return cls(root, data["version"], tables, data.get("updated_at"), data.get("retired", []), data["layout"])


def schema_fingerprint(table: str) -> str:
    """Changes whenever the declared columns of ``table`` change (segments of an older schema are read by name)."""
    text = ",".join(f"{name}:{kind}" for name, kind in SCHEMAS[table])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def new_segment_file(table: str) -> str:
    """A fresh segment's name, relative to the lake root: ``data/<table>/<UTC time>-<random>.parquet``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{DATA}/{table}/{stamp}-{uuid.uuid4().hex[:12]}.parquet"
