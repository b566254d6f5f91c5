"""Write the static site of a lake into a folder: index.html, a page per family and per model, local assets.

The site is built in a fresh folder inside ``out`` and moved into place entry by entry, so a page of a model that
left the lake never lingers, and files of ``out`` that are not the site's (the nightly's CSV and plots) stay. A
model page whose inputs did not change since the build already in ``out`` is linked from it instead of rendered
(``reuse.py``): the index and the family pages are rendered every time, model pages only for what changed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..lake import lake_path
from ..leaderboard.render import DEFAULT_METRIC, board_csv, board_view
from . import pages, reuse
from .charts import Figure
from .data import LakeData, model_details, read_lake

ASSETS = Path(__file__).resolve().parent / "assets"
# What the site owns inside ``out``: replaced whole by each build, in this order. ``data`` (which holds the pages'
# keys) comes after ``models``: a build stopped between the two leaves old keys beside new pages, which only costs
# renders, never new keys beside old pages, which would keep stale pages.
SITE_ENTRIES = ("index.html", "leaderboard.csv", "assets", "families", "models", "data")
DEFAULT_TITLE = "wwhub report"


class NothingToReport(LookupError):
    """The lake holds no model: there is no site to write."""


@dataclass
class SiteSummary:
    out: Path
    seconds: float
    models: int
    families: int
    bytes: dict[str, int] = field(default_factory=dict)  # index.html, data/leaderboard.js, models (all), largest model
    rendered: int = 0  # model pages rendered by this build; the others were kept from the previous one

    @property
    def index(self) -> Path:
        return self.out / "index.html"


def _standalone(figure: Figure) -> str:
    """A chart as an SVG file (for an <img>): the XML prolog, same markup."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + figure.svg + "\n"


def _write(path: Path, text: str) -> int:
    data = text.encode()
    path.write_bytes(data)
    return len(data)


def _write_models(
    data: LakeData, root: Path, staging: Path, out: Path, title: str, generated: str, reuse_previous: bool
) -> tuple[int, int, int]:
    """Every model page, kept from the build in ``out`` where its key is unchanged (``reuse_previous``), else
    rendered; (total bytes, largest page's bytes, pages rendered). Records the keys for the next build."""
    keys = reuse.page_keys(root, data, title)
    previous = reuse.previous_keys(out) if reuse_previous else {}
    sizes_of: dict[str, int] = {}
    for repo_id, key in keys.items():
        href = pages.model_href(repo_id)
        if previous.get(repo_id) == key and (out / href).is_file():
            sizes_of[repo_id] = reuse.keep_page(out / href, staging / href)
    board = {row["repo_id"]: row for row in data.board}
    layer_counts = {repo_id: row.get("num_layers") or 0 for repo_id, row in data.models.items()}
    wanted = set(keys) - set(sizes_of)
    for repo_id, details in model_details(root, layer_counts, wanted=wanted):
        html = pages.model_page(data, data.models[repo_id], details, board.get(repo_id), title, generated)
        sizes_of[repo_id] = _write(staging / pages.model_href(repo_id), html)
    reuse.write_record(staging, keys)
    return sum(sizes_of.values()), max(sizes_of.values(), default=0), len(wanted)


def _install(staging: Path, out: Path) -> None:
    """Move the built entries into ``out``, replacing the previous build's."""
    out.mkdir(parents=True, exist_ok=True)
    for name in SITE_ENTRIES:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if (staging / name).exists():
            os.replace(staging / name, target)


def build_site(
    lake: str | Path | None,
    out: str | Path,
    metric: str = DEFAULT_METRIC,
    title: str = DEFAULT_TITLE,
    reuse_previous: bool = True,
) -> SiteSummary:
    """Build the site of ``lake`` in ``out`` (created if missing), ranked by the reported ``metric``; model pages
    whose inputs did not change are kept from the build already in ``out`` unless ``reuse_previous`` is false."""
    started = time.perf_counter()
    root = lake_path(lake)
    out = Path(out)
    data = read_lake(root, metric)
    if not data.models:
        raise NothingToReport(f"no models in the lake {root}: scan some first (wwhub scan, or wwhub demo)")
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wwhub-site-", dir=out))
    try:
        for folder in ("assets", "data", "families", "models"):
            (staging / folder).mkdir()
        for asset in ASSETS.iterdir():
            shutil.copyfile(asset, staging / "assets" / asset.name)
        index, thumbnails = pages.index_page(data, title, generated)
        sizes = {"index.html": _write(staging / "index.html", index)}
        sizes["data/leaderboard.js"] = _write(staging / "data" / "leaderboard.js", pages.board_payload(data))
        _write(staging / "leaderboard.csv", board_csv(board_view(data.board, data.metric)))
        for family, figure in thumbnails.items():
            _write(staging / "families" / f"{pages.page_slug(family)}-alpha.svg", _standalone(figure))
            _write(staging / pages.family_href(family), pages.family_page(data, family, title, generated))
        sizes["models"], sizes["largest model page"], rendered = _write_models(
            data, root, staging, out, title, generated, reuse_previous
        )
        _install(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SiteSummary(out, time.perf_counter() - started, len(data.models), len(data.families), sizes, rendered)
