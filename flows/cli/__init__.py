"""The ``wwhub`` command. One module per command group; each adds its subparser in ``register``.

Command modules are imported only when their command runs: ``analyze`` pulls in numpy, scipy and torch, ``scan``
Prefect, and ``wwhub --help`` or ``wwhub query`` must not pay for them. The table below is what ``--help`` lists
(its help texts are the modules' own, checked by a test).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._errors import EXIT_BAD_INPUT, CliError

# command -> (module in flows.cli, its one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "scan the bundled demo families and show the leaderboard (no setup)"),
    "analyze": ("analyze", "analyze one local model (folder of *.safetensors or one file)"),
    "scan": ("scan", "scan models into the lake (hub, local folder or HF cache)"),
    "query": ("query", "run SQL (or a named query from queries/) against the lake"),
    "leaderboard": ("leaderboard", "rank models per family against their reported accuracy"),
    "plot": ("plot", "family trend plots, correlation flow, or a layer's ESD (--esd)"),
    "evals": ("evals", "manage reported evaluation results"),
    "serve": ("serve", "serve the nightly scan on its schedule (needs a Prefect server)"),
}


def _command_in(argv: list[str]) -> str | None:
    # The top-level parser has no option that takes a value, so the command is the first non-option word.
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full subparser of the command named in ``argv`` (its module imported) and a one-line
    entry for every other command. Without ``argv``, every command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="wwhub",
        description="How well trained is a model, from its weights alone (WeightWatcher-style spectral analysis).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _command_in(argv) if argv is not None else None
    for name, (module, help_text) in COMMANDS.items():
        if argv is None or name == chosen:
            importlib.import_module(f"{__name__}.{module}").register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CliError as err:
        print(f"wwhub {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())


__all__ = ["main", "run", "EXIT_BAD_INPUT"]
