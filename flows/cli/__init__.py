"""The ``wwhub`` command. One module per command group; each adds its subparser in ``register``.

Command modules are imported only when their command runs: ``analyze`` pulls in numpy, scipy and torch, ``scan``
Prefect, and ``wwhub --help`` or ``wwhub query`` must not pay for them. The table below is what ``--help`` lists
(its help texts are the modules' own, checked by a test).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from .. import __version__
from ._errors import (
    DEBUG_ENV,
    DEBUG_FLAG,
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    REPORT_BUGS,
    CliError,
    OneLineParser,
    debug_requested,
    os_error_message,
)

# command -> (module in flows.cli that registers it, its one-line help); a module may register several commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "scan the bundled demo families and show the leaderboard (no setup)"),
    "analyze": ("analyze", "analyze one local model (folder of *.safetensors or one file)"),
    "scan": ("scan", "scan models into the lake (hub, local folder or HF cache)"),
    "query": ("query", "run SQL (or a named query from queries/) against the lake"),
    "leaderboard": ("leaderboard", "rank models per family against their reported accuracy"),
    "plot": ("plot", "family trend plots, correlation flow, or a layer's ESD (--esd)"),
    "report": ("report", "write the lake's static site: leaderboard, a page per family and per model"),
    "evals": ("evals", "manage reported evaluation results"),
    "lake": ("lake", "import, merge, compact, inspect, migrate or export a lake"),
    "serve": ("serve", "serve the nightly scan on its schedule (needs a Prefect server)"),
    "distance": ("distance", "per-layer distances of a model from its base (WeightWatcher's distances())"),
    "smooth": ("smooth", "write an SVD-smoothed copy of a checkpoint (WeightWatcher's SVDSmoothing)"),
    "sharpen": ("smooth", "write an SVD-sharpened copy of a checkpoint (WeightWatcher's SVDSharpness)"),
}


def _command_in(argv: list[str]) -> str | None:
    # The top-level parser has no option that takes a value, so the command is the first non-option word.
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full subparser of the command named in ``argv`` (its module imported) and a one-line
    entry for every other command. Without ``argv``, every command's module is imported."""
    parser = OneLineParser(
        prog="wwhub",
        description="How well trained is a model, from its weights alone (WeightWatcher-style spectral analysis).",
        epilog="Exit codes: 0 ok, 1 partial (some models failed, each recorded), 2 bad usage or input, "
        f"{EXIT_INTERNAL} internal error (a bug), 130 interrupted. docs/errors.md lists the messages.",
    )
    parser.add_argument("--version", action="version", version=f"wwhub {__version__}")
    parser.add_argument(
        DEBUG_FLAG,
        action="store_true",
        help=f"show Python tracebacks and debug logs (anywhere on the line; or set {DEBUG_ENV}=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _command_in(argv) if argv is not None else None
    wanted = None if argv is None else COMMANDS.get(chosen, ("", ""))[0]
    registered: set[str] = set()
    for name, (module, help_text) in COMMANDS.items():
        if wanted is None or module == wanted:
            if module not in registered:
                importlib.import_module(f"{__name__}.{module}").register(sub)
                registered.add(module)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def _configure_logging(debug: bool) -> None:
    """Warnings of wwhub's own modules as one line each on stderr; tracebacks only with --debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter(debug, "wwhub: %(levelname)s: %(message)s"))
    logger = logging.getLogger("flows")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    # huggingface_hub's warnings of each download it resumes and each request it retries restate what wwhub
    # reports once, in its own words: shown with --debug only. Its other warnings (a results file it skipped) stay.
    for retrying in _HUB_RETRY_LOGGERS:
        logging.getLogger(retrying).setLevel(logging.DEBUG if debug else logging.ERROR)


_HUB_RETRY_LOGGERS = ("huggingface_hub.file_download", "huggingface_hub.utils._http")


class _OneLineFormatter(logging.Formatter):
    def __init__(self, debug: bool, fmt: str):
        super().__init__(fmt)
        self.debug = debug

    def formatException(self, ei) -> str:  # noqa: N802 - logging's naming
        return super().formatException(ei) if self.debug else ""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).rstrip()


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code. Never raises for anything a user can cause."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != DEBUG_FLAG]
    _configure_logging(debug)
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit as stop:  # --help, --version (0) or a usage error argparse has already printed (2)
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    prog = f"wwhub {args.command}"
    try:
        return int(args.run(args) or 0)
    except CliError as err:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; what completed is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        if debug:
            traceback.print_exc()
        message = os_error_message(err)
        if message is None:
            print(f"{prog}: internal error: {_one_line(err)} ({REPORT_BUGS})", file=sys.stderr)
            return EXIT_INTERNAL
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        print(f"{prog}: internal error: {_one_line(err)} ({REPORT_BUGS})", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    return f"{err.__class__.__name__}: {text}" if text else err.__class__.__name__


# Commands that hand pandas objects around: analyze's whole-model options run ww_core.WeightWatcher (DataFrames).
PANDAS_COMMANDS = frozenset({"analyze"})


class _PandasHidden:
    """An import finder under which ``import pandas`` fails, as if pandas were not installed."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(
                f"No module named {name!r} (hidden by wwhub: its command does not use it)", name=name
            )


def run() -> None:
    """The ``wwhub`` process. pyarrow tries to import pandas at each conversion of Python values, to recognise pandas
    objects (its C++ side retries until the import succeeds): 0.2 s, a fifth of a one-model scan or a leaderboard.
    Commands that never use pandas run with it hidden."""
    if _command_in(sys.argv[1:]) not in PANDAS_COMMANDS:
        sys.meta_path.insert(0, _PandasHidden)
    code = main()
    if code == EXIT_INTERRUPTED:
        # Worker threads still inside an eigensolve or a download cannot be pre-empted; what completed is on disk
        # (each model is one commit), so leave without waiting for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


__all__ = ["main", "run", "EXIT_BAD_INPUT"]
