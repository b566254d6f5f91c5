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
    docs/formats.md "Precision")."""
    group = parser.add_argument_group("analysis (WeightWatcher analyze() options)")
    group.add_argument("--mp-fit", action="store_true", help="fit the Marchenko-Pastur bulk (num_spikes, mp_softrank)")
    group.add_argument("--randomize", action="store_true", help="compare with a shuffled W (correlation traps)")
    group.add_argument("--detX", "--ERG", dest="detX", action="store_true", help="SETOL/ERG detX condition")
    group.add_argument(
        "--fix-fingers",
        choices=["clip_xmax", "xmin_peak"],
        default=None,
        help="tame finger-like outliers in the tail fit (WeightWatcher's fix_fingers)",
    )
    group.add_argument(
        "--fit",
        choices=["PL", "TPL", "E_TPL"],
        default="PL",
        help="power law, truncated power law, or E_TPL (TPL with xmin at the ESD peak)",
    )
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
    _add_weightwatcher_arguments(group)
    group.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where eigensolves run")
    group.add_argument(
        "--precision",
        choices=["float64", "float32"],
        default=precision,
        help=f"Gram matrix and eigensolve precision (default: {precision}; float32 is faster, alphas agree to ~1e-5)",
    )
    group.add_argument("--blas-threads", type=positive_int, default=1, help="BLAS threads per eigensolve (default 1)")


def xmax_value(text: str) -> int | str:
    """``--xmax``: 'force', or how many of the largest eigenvalues the fit leaves out."""
    if text == "force":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'force' or a whole number, got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("expected 'force' or a nonzero whole number, got 0")
    return value


def _add_weightwatcher_arguments(group) -> None:
    """The rest of weightwatcher's per-layer analyze() options (docs/weightwatcher.md)."""
    group.add_argument("--vectors", action="store_true", help="eigenvector localization (12 bulk/tail columns)")
    group.add_argument("--glorot-fix", action="store_true", help="rescale W to Glorot units before the ESD")
    group.add_argument("--no-conv2d-norm", dest="conv2d_norm", action="store_false", help="no Conv2D normalization")
    group.add_argument("--channels", choices=["first", "last"], help="Conv2D layout: last (torch) or first (Keras)")
    group.add_argument("--conv2d-fft", action="store_true", help="ESD of each Conv2D's convolution operator")
    group.add_argument("--fft", action="store_true", help="Conv2D kernel slices replaced by Re(FFT2)")
    group.add_argument("--xmax", type=xmax_value, help="'force', or leave the N largest eigenvalues out of the fit")
    group.add_argument("--xmin-max", type=float, help="upper end of the xmin range with xmin_peak / E_TPL")
    group.add_argument("--max-fingers", type=positive_int, default=10, help="clip_xmax: most eigenvalues clipped")
    group.add_argument("--finger-thresh", type=float, default=1.0, help="clip_xmax: alpha drop that counts")
    group.add_argument("--pl-package", choices=["ww", "powerlaw"], default="ww", help="fit with the powerlaw package")
    group.add_argument("--tolerance", type=float, default=1e-6, help="weak_rank_loss: eigenvalues below this")
    group.add_argument("--inverse", action="store_true", help="analyze the ESD of X^-1")


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
        vectors=args.vectors,
        glorot_fix=args.glorot_fix,
        conv2d_norm=args.conv2d_norm,
        channels=args.channels,
        conv2d_fft=args.conv2d_fft,
        fft=args.fft,
        xmax=args.xmax,
        xmin_max=args.xmin_max,
        max_fingers=args.max_fingers,
        finger_thresh=args.finger_thresh,
        pl_package=args.pl_package,
        tolerance=args.tolerance,
        inverse=args.inverse,
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
    """The parsed ``--layers`` (a :class:`flows.analysis.selection.LayerSelection`); exit 2 on a bad value."""
    from ..analysis.selection import LayerSelection, SelectionError
    from ._errors import CliError

    try:
        return LayerSelection.parse(getattr(args, "layers", None))
    except SelectionError as err:
        raise CliError(str(err)) from err
