"""The analysis switches shared by ``analyze`` and ``scan``: one definition, mapped onto ww_core's options."""

from __future__ import annotations

import argparse


def _max_evals(text: str) -> int | None:
    return None if text.lower() in ("none", "0", "all") else int(text)


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("analysis (WeightWatcher analyze() options)")
    group.add_argument("--mp-fit", action="store_true", help="fit the Marchenko-Pastur bulk (num_spikes, mp_softrank)")
    group.add_argument("--randomize", action="store_true", help="compare with a shuffled W (correlation traps)")
    group.add_argument("--detX", dest="detX", action="store_true", help="SETOL/ERG detX condition")
    group.add_argument("--fix-fingers", choices=["clip_xmax", "xmin_peak"], default=None)
    group.add_argument("--fit", choices=["PL", "TPL"], default="PL", help="power law or truncated power law")
    group.add_argument("--no-pool", dest="pool", action="store_false", help="one row per Conv2D kernel position")
    group.add_argument("--min-evals", type=int, default=8)
    group.add_argument("--max-evals", type=_max_evals, default=15000, help="'none' analyzes every layer")
    group.add_argument("--seed", type=int, default=0, help="seed of the randomized copies")
    group.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    group.add_argument("--precision", choices=["float64", "float32"], default="float64")
    group.add_argument("--blas-threads", type=int, default=1, help="BLAS threads per eigensolve (default 1)")


def analysis_options(args: argparse.Namespace) -> dict:
    return dict(
        mp_fit=args.mp_fit,
        randomize=args.randomize,
        detX=args.detX,
        fix_fingers=args.fix_fingers,
        fit=args.fit,
        pool=args.pool,
        min_evals=args.min_evals,
        max_evals=args.max_evals,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        blas_threads=args.blas_threads,
    )


def add_layers_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layers",
        metavar="SPEC",
        help="only these layers: ids (3,5), excluded ids (--layers=-0,-7), types (dense, conv1d, conv2d, embedding, "
        "lm_head, expert), name globs ('*attention*', '-*bias*'); comma-separated, kinds combine with AND",
    )


def layer_selection(args: argparse.Namespace):
    """The parsed ``--layers`` (a :class:`flows.selection.LayerSelection`); exit 2 on a bad value."""
    from ..selection import LayerSelection, SelectionError
    from ._errors import CliError

    try:
        return LayerSelection.parse(getattr(args, "layers", None))
    except SelectionError as err:
        raise CliError(str(err)) from err
