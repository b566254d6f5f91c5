"""Which model pages of the previous build a new build can keep as they are.

A lake of 100 000 models has 100 000 model pages at 7-9 ms each: rebuilding all of them after a night that scanned
twenty models would cost the nightly a quarter of an hour for nothing. Each model page gets a key, a digest of
everything the page is made from:

* the site's own code, templates and queries, the wwhub version, the title and the ranking metric;
* the model's rows in the lake-wide reads (its latest models row, leaderboard row and family size, reported values,
  scan history, fine-tune rows as base and as fine-tune, the repos that name it as base, and which of the repos it
  links to have pages);
* for its per-layer rows (layers, ESDs, distances), the lake segments that may hold them (a segment's repo range
  covers it) and the keys those segments hide of it: a new scan, an import or a compaction that touches the repo
  gives it a new segment, and so a new key.

A page whose key equals the one the previous build recorded (``data/pages.json``) is linked from the previous
build instead of rendered; every other page is rendered. The key over-approximates (a compaction re-renders the
pages of the repos it rewrote) and never under-approximates what a page shows, so a reused page is the page a
full build would write, except for its footer's "generated" time, which says when it was rendered.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

from .. import __version__
from ..lake import Lake
from ..lake.views import QUERIES_DIR
from .data import LakeData

RECORD = "data/pages.json"
# The per-layer tables a model page reads (queries/site_layers.sql, site_esd.sql, site_distances.sql, site_drift.sql).
DETAIL_TABLES = ("layers", "esd", "distances")
_HERE = Path(__file__).resolve()
_CODE = [_HERE.parent, _HERE.parents[1] / "leaderboard" / "render.py", QUERIES_DIR]


def code_digest() -> str:
    """A digest of the wwhub version and of every file the pages are rendered with (the site's code, templates and
    assets, the leaderboard's names, the queries the pages read)."""
    digest = hashlib.sha256(__version__.encode())
    files = [p for root in _CODE for p in ([root] if root.is_file() else sorted(root.rglob("*")))]
    for path in files:
        if path.is_file() and path.suffix in (".py", ".j2", ".css", ".js", ".sql"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _segment_tokens(root: Path, repos: list[str]) -> dict[str, list]:
    """repo_id → the detail segments that may hold its rows, and the keys of it they hide (``repos`` sorted)."""
    tokens: dict[str, list] = defaultdict(list)
    snapshot = Lake(root).snapshot()
    for table in DETAIL_TABLES:
        for segment in snapshot.tables.get(table, []):
            low = 0 if segment.repo_min is None else bisect.bisect_left(repos, segment.repo_min)
            high = len(repos) if segment.repo_max is None else bisect.bisect_right(repos, segment.repo_max)
            for repo in repos[low:high]:
                tokens[repo].append(segment.file)
            for key in segment.hidden:
                tokens[key.get("repo_id")].append((segment.file, sorted(key.items())))
    return tokens


def page_keys(root: Path, data: LakeData, title: str) -> dict[str, str]:
    """repo_id → the key of its model page (see the module's docstring)."""
    common = (code_digest(), title, data.metric)
    board = {row["repo_id"]: row for row in data.board}
    tokens = _segment_tokens(root, sorted(data.models))
    keys = {}
    for repo, model in data.models.items():
        as_finetune, finetunes = data.bases_of.get(repo, []), data.finetunes_of.get(repo, [])
        children = data.declared_children.get(repo, [])
        linked = {f["base_repo_id"] for f in as_finetune} | {f["repo_id"] for f in finetunes} | set(children)
        linked |= {model["base_model"]} if model.get("base_model") else set()
        made_of = (
            common,
            model,
            board.get(repo),
            data.family_sizes.get(model["family"]),
            data.evals.get(repo),
            data.history.get(repo),
            as_finetune,
            finetunes,
            sorted(children),
            sorted((r, r in data.models) for r in linked),
            tokens.get(repo),
        )
        keys[repo] = hashlib.sha256(repr(made_of).encode()).hexdigest()
    return keys


def previous_keys(out: Path) -> dict[str, str]:
    """The keys the build in ``out`` recorded ({} when there is none, or it cannot be read: all pages rendered)."""
    try:
        recorded = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    pages = recorded.get("pages") if isinstance(recorded, dict) else None
    return pages if isinstance(pages, dict) else {}


def write_record(staging: Path, keys: dict[str, str]) -> None:
    (staging / RECORD).write_text(json.dumps({"pages": keys}, separators=(",", ":")))


def keep_page(previous: Path, staged: Path) -> int:
    """Put the previous build's page into the new build (a hard link where the file system allows); its bytes."""
    try:
        os.link(previous, staged)
    except OSError:
        shutil.copyfile(previous, staged)
    return staged.stat().st_size
