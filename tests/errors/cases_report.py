"""The static site and the dataset export (issue #21, branch site): `wwhub report` and `wwhub lake export` check
their folder and options before reading the lake, and write nothing when they refuse."""

from __future__ import annotations

from tests.errors.framework import Ctx, ErrorCase


def a_file(ctx: Ctx) -> str:
    (ctx.root / "notes.txt").write_text("mine")
    return "notes.txt"


CASES = [
    ErrorCase(
        "report-no-lake",
        "`wwhub report` of a lake that does not exist (no site folder is created)",
        2,
        "wwhub report: error: no lake at <path>: run `wwhub scan` (or `wwhub demo`) first, or pass --lake",
        lambda ctx: ["report", "--lake", "no-such-lake", "--out", "site"],
    ),
    ErrorCase(
        "report-out-is-a-file",
        "`wwhub report --out` naming a file",
        2,
        "wwhub report: error: --out notes.txt: is a file, expected a folder",
        lambda ctx: ["report", "--lake", str(ctx.lake), "--out", a_file(ctx)],
    ),
    ErrorCase(
        "export-dir-is-a-file",
        "`wwhub lake export DIR` naming a file",
        2,
        "wwhub lake: error: DIR notes.txt: is a file, expected a folder",
        lambda ctx: ["lake", "export", a_file(ctx), "--lake", str(ctx.lake)],
    ),
    ErrorCase(
        "export-file-size",
        "`wwhub lake export --max-file-mb` below 1",
        2,
        "wwhub lake: error: --max-file-mb 0: give a size of at least 1 (MB)",
        lambda ctx: ["lake", "export", "dataset", "--lake", str(ctx.lake), "--max-file-mb", "0"],
    ),
    ErrorCase(
        "export-repo-id",
        "`wwhub lake export --repo-id` that is not a Hub repo id (it fills the dataset card's examples)",
        2,
        "wwhub lake: error: --repo-id 'me/../x' is not a Hub repo id: expected org/name (letters, digits, '-', '_', "
        "'.')",
        lambda ctx: ["lake", "export", "dataset", "--lake", str(ctx.lake), "--repo-id", "me/../x"],
    ),
    ErrorCase(
        "export-no-lake",
        "`wwhub lake export` of a lake that does not exist (no dataset folder is created)",
        2,
        "wwhub lake: error: no lake at <path>: run `wwhub scan` (or `wwhub demo`) first, or pass --lake",
        lambda ctx: ["lake", "export", "dataset", "--lake", "no-such-lake"],
    ),
]
