"""The ``wwhub`` command. One module per command group; each adds its subparser in ``register``."""

from __future__ import annotations

import argparse
import sys

from . import analyze, demo, distance, evals, leaderboard, plot, query, scan, serve, smooth
from ._errors import EXIT_BAD_INPUT, CliError

COMMANDS = [demo, analyze, scan, query, leaderboard, plot, evals, serve, distance, smooth]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wwhub",
        description="How well trained is a model, from its weights alone (WeightWatcher-style spectral analysis).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
