"""The CLI's framework: --version, --debug, exit codes, help text on every option, and the commands and links
of README.md and docs/."""

from __future__ import annotations

import argparse
import logging
import re
import shlex
from pathlib import Path

import pytest

from flows import __version__
from flows.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[3]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wwhub {__version__}"


def _boom(*args, **kwargs):
    raise ZeroDivisionError("a bug")


@pytest.mark.parametrize("how", ["flag-after-command", "flag-first", "variable"])
def test_debug_shows_the_traceback(how, monkeypatch, capsys):
    monkeypatch.setattr("flows.cli.analyze.plan_path", _boom)
    argv = ["analyze", "m.safetensors"]
    if how == "flag-after-command":
        argv.append("--debug")
    elif how == "flag-first":
        argv.insert(0, "--debug")
    else:
        monkeypatch.setenv("WWHUB_DEBUG", "1")
    assert main(argv) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert err.strip().splitlines()[-1].startswith("wwhub analyze: internal error: ZeroDivisionError: a bug")


def test_without_debug_an_internal_error_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr("flows.cli.analyze.plan_path", _boom)
    assert main(["analyze", "m.safetensors"]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report" in err and "--debug" in err


def test_a_file_system_error_on_a_users_path_is_bad_input(monkeypatch, capsys):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/data/model.safetensors")

    monkeypatch.setattr("flows.cli.analyze.plan_path", denied)
    assert main(["analyze", "/data/model.safetensors"]) == 2
    assert capsys.readouterr().err == "wwhub analyze: error: /data/model.safetensors: Permission denied\n"


def test_warnings_of_wwhub_are_one_line_without_debug(capsys):
    main(["--version"])  # configures logging as every command does
    try:
        raise RuntimeError("inner")
    except RuntimeError:
        logging.getLogger("flows.scanning.loop").exception("acme/x: unexpected error")
    assert capsys.readouterr().err == "wwhub: ERROR: acme/x: unexpected error\n"


def _options(parser: argparse.ArgumentParser, path: str = "wwhub"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def test_every_option_and_argument_has_help_text():
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in _options(build_parser()) if not a.help]
    assert missing == []


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(document, command) for every `wwhub ...` line of the shell blocks of README.md and docs/*.md, as typed
    (comments and env assignments removed)."""
    commands = []
    for document in DOCUMENTS:
        for block in re.findall(r"```bash\n(.*?)```", document.read_text(), re.DOTALL):
            for line in block.splitlines():
                line = line.split("  #")[0].strip()
                match = re.search(r"(?:^|\s|&&\s)(?:\.venv/bin/)?wwhub (.*)$", line)
                if match and not line.startswith("#"):
                    commands.append((document.relative_to(ROOT).as_posix(), match.group(1)))
    return commands


@pytest.mark.parametrize(("document", "command"), documented_commands())
def test_documented_commands_parse(document, command, capsys):
    argv = [token for token in shlex.split(command) if token != "..."]
    try:
        build_parser().parse_args(argv)
    except SystemExit as stop:
        pytest.fail(f"{document}: `wwhub {command}` does not parse: {capsys.readouterr().err}")
        raise AssertionError from stop


def test_readme_and_docs_show_wwhub_commands():
    documents = {document for document, _ in documented_commands()}
    # The README shows a few commands per group; the reference pages in docs/ carry the rest.
    assert {"README.md", "docs/analyze.md", "docs/scan.md", "docs/leaderboards.md"} <= documents
    assert len(documented_commands()) > 40


def test_readme_is_a_first_read():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def relative_links(document: Path) -> list[str]:
    """The link targets of a markdown file that are files of this repository (no URL), without their anchors."""
    links = re.findall(r"\]\(([^)\s]+)\)", document.read_text())
    return [link.split("#")[0] for link in links if not re.match(r"[a-z]+:", link)]


def test_the_readme_links_every_page_of_docs():
    linked = {(ROOT / link).resolve() for link in relative_links(ROOT / "README.md")}
    assert [page.name for page in DOCUMENTS[1:] if page.resolve() not in linked] == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_a_file(document):
    broken = [link for link in relative_links(document) if link and not (document.parent / link).exists()]
    assert broken == []
