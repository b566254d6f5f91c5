"""What became of a model in a scan: one vocabulary for the lake, the CLI, the Prefect flows and their artifacts."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    SCANNED = "scanned"
    # Some shards could not be read: the rest of the model is in the lake, and the reason names what is missing.
    PARTIAL = "partial"
    SKIPPED = "skipped"  # already in the lake at this commit
    FAILED = "failed"
    UNSUPPORTED = "unsupported"  # nothing analyzable with the options of the scan (e.g. only pickles, --no-pickle)
    GATED = "gated"  # the hub wants the license accepted and a token with access (the reason says so)
    # The hub did not answer (after each request's bounded retries, or past the rate-limit wait) before any weight
    # was read: a passing outage, so the next scan tries the model again.
    UNAVAILABLE = "unavailable"


# A scan whose rows stand in the leaderboards (models_latest prefers these over any later failed attempt).
GOOD = frozenset({Status.SCANNED, Status.PARTIAL})
# Models rows that do not make a commit "already in the lake": a later run with other options, a token, or a hub
# that answers scans it again (lake rows written before attempts had their own table hold the last two).
RETRIED = frozenset({Status.UNSUPPORTED, Status.GATED, Status.UNAVAILABLE})
# What makes a scan exit with 1 (partial: some of a model could not be read).
PROBLEMS = frozenset({Status.PARTIAL, Status.FAILED, Status.GATED, Status.UNAVAILABLE})
# What the summary's "failed" counts (besides families that could not be listed); gated is counted apart.
FAILED = frozenset({Status.FAILED, Status.UNAVAILABLE})
