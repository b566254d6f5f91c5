"""What a scan did: one :class:`ModelOutcome` per listed model and the :class:`ScanReport` every summary (the CLI's,
the Prefect log and artifacts, the ``scans`` row) is derived from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..sources import ModelRef
from .status import FAILED, GOOD, PROBLEMS, Status


@dataclass
class ModelOutcome:
    repo_id: str
    revision: str
    family: str
    status: Status
    reason: str = ""
    num_layers: int = 0
    num_shards: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    scan_id: str = ""
    error_kind: str = ""  # for a failure before any weight was read: HubError.kind (not_found, gated, ...)
    committed: bool = False  # a models row was written (else a failure is recorded as an attempt)

    @property
    def label(self) -> str:
        return f"{self.repo_id}@{self.revision[:12]}"


@dataclass
class ScanReport:
    """What one scan did: every listed model's outcome, and what its families listed. Every summary (the CLI's,
    the Prefect log and artifacts, the ``scans`` row) is derived from :meth:`counts` and :meth:`problems`."""

    scan_id: str
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    outcomes: list[ModelOutcome] = field(default_factory=list)
    list_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    listings: dict[str, list[ModelRef]] = field(default_factory=dict)  # family → refs in listing order

    @property
    def listed(self) -> int:
        """The commits the families listed, each once (a repo two families list is one model of the scan)."""
        return len({(ref.repo_id, ref.revision) for refs in self.listings.values() for ref in refs})

    def count(self, *statuses: Status) -> int:
        return sum(o.status in statuses for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        """listed, scanned (scanned or partial), skipped (already in the lake), unsupported, gated, failed (failed
        or unavailable, and families that could not be listed)."""
        return {
            "listed": self.listed,
            "scanned": self.count(*GOOD),
            "skipped": self.count(Status.SKIPPED),
            "unsupported": self.count(Status.UNSUPPORTED),
            "gated": self.count(Status.GATED),
            "failed": self.count(*FAILED) + len(self.list_errors),
        }

    def problems(self) -> list[str]:
        """One line per family that could not be listed and per model that was not scanned whole, with why."""
        lines = [f"family {error}" for error in self.list_errors]
        for o in self.outcomes:
            if o.status in PROBLEMS or o.status == Status.UNSUPPORTED:
                reason = o.reason if o.reason.startswith(o.repo_id) else f"{o.label}: {o.reason}"
                lines.append(f"{o.status}: {reason}")
        if self.interrupted:
            lines.append(f"interrupted after {len(self.outcomes)} of {self.listed} models")
        return lines

    @property
    def exit_code(self) -> int:
        # A model skipped as asked (e.g. --no-pickle) is recorded with its reason but is not a failure.
        return 1 if self.count(*PROBLEMS) or self.list_errors else 0
