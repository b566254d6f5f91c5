"""User-facing errors of the CLI and their exit codes.

0 ok, 1 partial (some models failed, each recorded with its reason), 2 bad usage or input (a message naming the
value and what to do), 70 an internal error (a bug in wwhub: one line saying where to report it), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_BAD_INPUT = 2
# sysexits.h EX_SOFTWARE: distinct from 1 (partial), so a script can tell a bug from a model that failed.
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

DEBUG_FLAG = "--debug"
DEBUG_ENV = "WWHUB_DEBUG"
REPORT_BUGS = "this is a bug in wwhub: rerun with --debug and report the traceback in the wwhub issue tracker"


class CliError(Exception):
    """An error the user can fix; printed as one message without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.exit_code = exit_code


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line: the option, what it accepts and where the usage is. (argparse prints the whole
    usage first, 17 lines for ``wwhub scan``, above the one line that says what is wrong.) Subparsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")


def debug_requested(argv: list[str]) -> bool:
    """``--debug`` anywhere on the command line, or ``WWHUB_DEBUG`` set to anything but '' or '0'."""
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def os_error_message(err: OSError) -> str | None:
    """One line for a file-system error about a path the user gave (permission, missing folder, full disk), or
    None when the error names no file (then it is not the user's input, and is reported as internal)."""
    if err.filename is None:
        return None
    target = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 else "")
    return f"{target}: {err.strerror or err.__class__.__name__}"
