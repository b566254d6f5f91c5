"""``wwhub smooth PATH --out DIR`` and ``wwhub sharpen PATH --out DIR``: WeightWatcher's SVDSmoothing and
SVDSharpness, written as a new safetensors checkpoint (the input is never touched)."""

from __future__ import annotations

import argparse
import sys
from functools import partial

from ww_core.smoothing import SMOOTH_METHODS, SVD_SOLVERS, sharpen_tensor, smooth_tensor

from ..analysis.selection import SelectionError
from ..analysis.smoothing import transform_checkpoint
from ..weights import WeightsError
from ._errors import EXIT_OK, EXIT_PARTIAL, CliError
from ._options import add_layers_argument, count_or_none, layer_selection
from ._output import FORMATS, write_rows
from ._progress import progress_bar

TABLE_COLUMNS = ["name", "layer_type", "N", "M", "rf", "count", "kept", "removed", "status", "reason"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="model folder or .safetensors file")
    parser.add_argument("--out", required=True, help="folder for the transformed copy (new or empty)")
    add_layers_argument(parser)
    parser.add_argument("--min-evals", type=int, default=8, help="smaller layers are copied unchanged")
    parser.add_argument(
        "--max-evals", type=count_or_none, default=15000, help="larger layers are copied unchanged ('none': all)"
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="of the per-layer report")
    parser.add_argument("--report", help="write the per-layer report to FILE instead of stdout")


def register(sub) -> None:
    smooth = sub.add_parser(
        "smooth",
        help="write an SVD-smoothed copy of a checkpoint (WeightWatcher's SVDSmoothing)",
        description="Keep each layer's top singular components (how many: --method detX | alpha_min | rmt | svd) "
        "and write the result as a new checkpoint with the same files, names, dtypes and index.",
    )
    _common(smooth)
    smooth.add_argument(
        "--method",
        choices=SMOOTH_METHODS,
        default="detX",
        help="detX: the detX=1 tail; alpha_min: the power-law tail; rmt: the spikes past the MP bulk; "
        "svd: --percent of M",
    )
    smooth.add_argument("--percent", type=float, default=0.8, help="fraction of components kept by --method svd")
    smooth.add_argument(
        "--svd-solver",
        choices=SVD_SOLVERS,
        default="exact",
        help="exact truncation (default), or WeightWatcher 0.7.7's randomized TruncatedSVD for its numbers",
    )
    smooth.set_defaults(run=run_smooth)
    sharpen = sub.add_parser(
        "sharpen",
        help="write an SVD-sharpened copy of a checkpoint (WeightWatcher's SVDSharpness)",
        description="Remove from each layer as many top singular components as a shuffled copy of it has "
        "Marchenko-Pastur spikes (correlation traps), and write the result as a new checkpoint.",
    )
    _common(sharpen)
    sharpen.add_argument("--seed", type=int, default=0, help="seed of the shuffles")
    sharpen.set_defaults(run=run_sharpen)


def run_smooth(args: argparse.Namespace) -> int:
    if args.method == "svd" and not 0.0 < args.percent <= 1.0:
        raise CliError(f"--percent {args.percent}: expected a fraction in (0, 1]")
    transform = partial(
        _smooth,
        method=args.method,
        percent=args.percent,
        solver=args.svd_solver,
        min_evals=args.min_evals,
        max_evals=args.max_evals,
    )
    return _run(args, "smooth", transform)


def run_sharpen(args: argparse.Namespace) -> int:
    transform = partial(_sharpen, seed=args.seed, min_evals=args.min_evals, max_evals=args.max_evals)
    return _run(args, "sharpen", transform)


def _smooth(name, tensor, **options):
    return smooth_tensor(tensor, name, **options)


def _sharpen(name, tensor, **options):
    return sharpen_tensor(tensor, name, **options)


def _run(args: argparse.Namespace, verb: str, transform) -> int:
    selection = layer_selection(args)
    try:
        with progress_bar(total=None, desc=f"{verb} {args.path}", unit="layer") as bar:
            rows = transform_checkpoint(args.path, args.out, transform, selection, lambda name: bar.update(1))
    except (WeightsError, SelectionError) as err:
        raise CliError(str(err)) from err
    write_rows([row.as_row() for row in rows], args.format, args.report, TABLE_COLUMNS)
    changed = sum(row.status == "ok" for row in rows)
    failed = [row for row in rows if row.status == "failed"]
    print(
        f"wrote {args.out}: {changed} of {len(rows)} layers {verb}ed, the rest copied unchanged",
        file=sys.stderr,
    )
    return EXIT_PARTIAL if failed else EXIT_OK
