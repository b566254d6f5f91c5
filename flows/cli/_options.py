"""The analysis switches shared by ``analyze`` and ``scan``: one definition, mapped onto ww_core's options."""

from __future__ import annotations

import argparse


def _max_evals(text: str) -> int | None:
    return None if text.lower() in ("none", "0", "all") else int(text)


def add_analysis_arguments(parser: argparse.ArgumentParser, precision: str = "float64") -> None:
    """The analysis switches; ``precision`` is the command's default working precision (``scan``: float32, see
    README "Precision")."""
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
    group.add_argument(
        "--precision",
        choices=["float64", "float32"],
        default=precision,
        help=f"Gram matrix and eigensolve precision (default: {precision}; float32 is faster, alphas agree to ~1e-5)",
    )
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
