"""The lake as the scan's ledger: which commits are already scanned, read once per scan.

A scan lists its families (each listed repo pinned to its commit by the listing itself), then asks the ledger which
of them are done, before any per-repo request, Prefect task or lake lookup: a night where nothing changed costs
the listing pages and this one read.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..lake import Lake, connect
from ..lake.store import stands_for_scan

_DONE = "SELECT repo_id, revision, status, layer_selection FROM models"


class Ledger:
    """The ``(repo_id, revision)`` pairs of the lake's ``models`` table with their statuses and layer selections."""

    def __init__(self, rows: list[tuple[str, str, str, str | None]]):
        self._rows: dict[tuple[str, str], list[tuple[str, str | None]]] = defaultdict(list)
        for repo_id, revision, status, selection in rows:
            self._rows[(repo_id, revision)].append((status, selection))

    @classmethod
    def read(cls, lake_root: str | Path) -> Ledger:
        """The ledger of the lake at ``lake_root`` (empty when there is no lake yet)."""
        lake = Lake(lake_root)
        if lake.layout() is None:
            return cls([])
        con = connect(lake, reading=_DONE)
        try:
            return cls(con.execute(_DONE).fetchall())
        finally:
            con.close()

    def has(self, repo_id: str, revision: str, selection: str = "") -> bool:
        """Whether a scan of this commit with ``--layers`` ``selection`` would only repeat one in the lake (the
        rule of :func:`flows.lake.store.stands_for_scan`)."""
        return any(
            stands_for_scan(status, stored, selection) for status, stored in self._rows.get((repo_id, revision), ())
        )

    def __len__(self) -> int:
        return len(self._rows)
