"""The analysis switches shared by ``analyze`` and ``scan``: one definition, mapped onto ww_core's options; and the
argument types whose errors name the option and what it accepts."""

from __future__ import annotations

import argparse
import re

from ._errors import CliError


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (argparse prints the message after the option's name)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def count_or_none(text: str) -> int | None:
    """``--max-evals``: a count, or none/all/0 for no cap."""
    if text.lower() in ("none", "0", "all"):
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', got {text!r}") from None


def add_analysis_arguments(parser: argparse.ArgumentParser, precision: str = "float64") -> None:
    """The analysis switches; ``precision`` is the command's default working precision (``scan``: float32, see
    README "Precision")."""
    group = parser.add_argument_group("analysis (WeightWatcher analyze() options)")
    group.add_argument("--mp-fit", action="store_true", help="fit the Marchenko-Pastur bulk (num_spikes, mp_softrank)")
    group.add_argument("--randomize", action="store_true", help="compare with a shuffled W (correlation traps)")
    group.add_argument("--detX", dest="detX", action="store_true", help="SETOL/ERG detX condition")
    group.add_argument(
        "--fix-fingers",
        choices=["clip_xmax", "xmin_peak"],
        default=None,
        help="tame finger-like outliers in the tail fit (WeightWatcher's fix_fingers)",
    )
    group.add_argument("--fit", choices=["PL", "TPL"], default="PL", help="power law or truncated power law")
    group.add_argument("--no-pool", dest="pool", action="store_false", help="one row per Conv2D kernel position")
    group.add_argument(
        "--min-evals", type=positive_int, default=8, help="skip layers with fewer eigenvalues (default 8)"
    )
    group.add_argument(
        "--max-evals",
        type=count_or_none,
        default=15000,
        help="skip layers with more eigenvalues (default 15000; 'none' analyzes every layer)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the randomized copies")
    group.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where eigensolves run")
    group.add_argument(
        "--precision",
        choices=["float64", "float32"],
        default=precision,
        help=f"Gram matrix and eigensolve precision (default: {precision}; float32 is faster, alphas agree to ~1e-5)",
    )
    group.add_argument("--blas-threads", type=positive_int, default=1, help="BLAS threads per eigensolve (default 1)")


def analysis_options(args: argparse.Namespace) -> dict:
    """ww_core's options from the arguments, validated once; a bad combination is a CliError naming the options."""
    import ww_core

    options = dict(
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
    try:
        ww_core.AnalysisOptions.from_kwargs(**options)
    except (TypeError, ValueError) as err:
        # ww_core names its parameters (min_evals=1, fit='TPL'); say it with the options the user typed.
        message = re.sub(r"\b([a-z][a-z_]*)=", lambda m: "--" + m.group(1).replace("_", "-") + " ", str(err))
        raise CliError(message) from None
    return options


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
