"""``wwhub evals import``: reported evaluation results from a CSV, the Open LLM Leaderboard, or lm-eval files."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..lake import LakeError
from ._errors import CliError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def register(sub) -> None:
    parser = sub.add_parser("evals", help="manage reported evaluation results")
    actions = parser.add_subparsers(dest="action", required=True)
    importer = actions.add_parser(
        "import",
        help="import reported results: a CSV, the Open LLM Leaderboard, or lm-evaluation-harness results",
        description="Import reported evaluation results into the lake, with their provenance. Give one of: a CSV "
        "(repo_id, metric, value[, dataset, source, split, task, scale, n_shot, stderr]); "
        "--open-llm-leaderboard [PARQUET|REPO]; --lm-eval PATH|REPO. A file that holds a bad value "
        "(NaN, inf, a negative accuracy, an unknown column) is refused as a whole.",
    )
    importer.add_argument("file", nargs="?", help="CSV with columns repo_id, metric, value[, dataset, source, ...]")
    importer.add_argument(
        "--open-llm-leaderboard",
        nargs="?",
        const="open-llm-leaderboard/contents",
        metavar="PARQUET|REPO",
        help="the Open LLM Leaderboard's contents: a local Parquet file, or a dataset repo fetched from the hub "
        "(default: open-llm-leaderboard/contents)",
    )
    importer.add_argument(
        "--lm-eval",
        metavar="PATH|REPO",
        help="lm-evaluation-harness results*.json: a file, a folder searched recursively, or a model repo's files",
    )
    importer.add_argument("--model", help="the repo id the lm-eval results belong to (default: from the file)")
    importer.add_argument(
        "--scale",
        choices=["percent", "fraction"],
        help="the scale of the CSV's proportions (default: a scale column, a %% sign, else detected per source "
        "and metric)",
    )
    importer.add_argument("--endpoint", help="Hub endpoint URL (default: HF_ENDPOINT or https://huggingface.co)")
    importer.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")
    importer.set_defaults(run=run_import)


def _is_results_file(name: str) -> bool:
    base = Path(name).name
    return base.startswith("results") and base.endswith(".json")


def _hub_files(args: argparse.Namespace, repo_id: str, select, repo_type: str) -> list[Path]:
    from ..sources import HubError, HubSource

    try:
        return HubSource(endpoint=args.endpoint).fetch_files(repo_id, select, repo_type=repo_type)
    except HubError as err:
        raise CliError(str(err)) from err


def _read(args: argparse.Namespace):
    """(Import, label, origin) for the chosen kind of input."""
    from ..evals.importers import read_csv, read_lm_eval, read_open_llm_leaderboard

    chosen = [x for x in (args.file, args.open_llm_leaderboard, args.lm_eval) if x is not None]
    if len(chosen) != 1:
        raise CliError("give one input: a CSV file, --open-llm-leaderboard [PARQUET|REPO] or --lm-eval PATH|REPO")
    if args.file is not None:
        path = Path(args.file)
        return read_csv(path, args.scale), f"csv-{path.stem}", str(path.resolve())
    if args.scale:
        raise CliError("--scale applies to CSV files; the other sources say their scale")
    if args.open_llm_leaderboard is not None:
        where = args.open_llm_leaderboard
        if Path(where).exists() or not _REPO_ID.match(where):
            return read_open_llm_leaderboard(Path(where)), "open-llm-leaderboard", str(Path(where).resolve())
        files = _hub_files(args, where, lambda name: name.endswith(".parquet"), "dataset")
        if len(files) != 1:
            raise CliError(f"dataset {where}: expected one Parquet file, found {len(files)}")
        return read_open_llm_leaderboard(files[0]), "open-llm-leaderboard", f"hub:dataset:{where}"
    where = args.lm_eval
    path = Path(where)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if _is_results_file(p.name))
        return read_lm_eval(files, args.model, path.name), f"lm-eval-{path.name}", str(path.resolve())
    if path.exists() or not _REPO_ID.match(where):
        return read_lm_eval([path], args.model, path.name), f"lm-eval-{path.stem}", str(path.resolve())
    files = _hub_files(args, where, _is_results_file, "model")
    return read_lm_eval(files, args.model or where, where), f"lm-eval-{where}", f"hub:model:{where}"


def run_import(args: argparse.Namespace) -> int:
    from ..evals.importers import ImportFailed
    from ..evals.ingest import store_import

    try:
        imported, label, origin = _read(args)
        stored = store_import(args.lake, imported, label, origin)
    except (ImportFailed, LakeError) as err:
        raise CliError(str(err)) from err
    for note in stored.notes:
        print(f"wwhub evals import: warning: {note}", file=sys.stderr)
    print(f"imported {stored.rows} values ({imported.source}) into {stored.lake} as {stored.import_id}")
    return 0
