"""families.yaml and the scan's query options, checked by one declared schema (flows/scanning/families.py)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from huggingface_hub.hf_api import ModelSort_T

from flows.scanning.families import SORT_KEYS, FamiliesError, load_families, validate_query

ROOT = Path(__file__).resolve().parents[3]


def test_sort_keys_are_the_hubs():
    assert SORT_KEYS == typing.get_args(ModelSort_T)


def test_the_shipped_families_files_are_valid():
    assert set(load_families(ROOT / "families.yaml")) == {"pythia", "gpt2", "qwen2.5-0.5b-finetunes"}
    assert load_families(ROOT / "flows" / "demo" / "families.yaml") == {
        "digits-batch-size": {"search": "digits-mlp-bs"},
        "digits-width": {"search": "digits-mlp-w"},
    }


def test_a_valid_file_gives_plain_queries(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("families:\n  a: {author: x, limit: 3}\n  b: {repos: [o/n@v1, o/m]}\n  c: {filter: tag-1}\n")
    assert load_families(path) == {
        "a": {"author": "x", "limit": 3},
        "b": {"repos": ["o/n@v1", "o/m"]},
        "c": {"filter": ["tag-1"]},  # one tag is a list of one
    }


def test_every_problem_is_reported_at_once_with_its_line(tmp_path):
    path = tmp_path / "families.yaml"
    path.write_text(
        "families:\n"  # 1
        "  a:\n"  # 2
        "    author: acme\n"  # 3
        "    limit: many\n"  # 4
        "    sortt: likes\n"  # 5
        "  b: {repos: [org/ok, 'bad id', org/x@../y]}\n"  # 6
        "  a: {search: again}\n"  # 7
    )
    with pytest.raises(FamiliesError) as raised:
        load_families(path)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"{path}: 3 problems:"
    assert lines[1] == f"  {path}:7: duplicate key 'a' (first on line 2): YAML would keep only the last one"
    assert lines[2].startswith(f"  {path}:6: family 'b': repos[1]: repo 'bad id' is not a Hub repo id")
    assert (
        lines[3]
        == f"  {path}:6: family 'b': repos[2]: repo 'org/x@../y': revision '../y' is not a branch, tag or commit sha"
    )


def test_problems_of_the_first_of_two_equal_keys_are_still_found(tmp_path):
    # YAML keeps the last of two equal keys; the first one's line numbers must not be lost for the other families.
    path = tmp_path / "f.yaml"
    path.write_text("families:\n  a:\n    limit: many\n  b:\n    limit: 0\n    search: x\n")
    with pytest.raises(FamiliesError, match=r"f.yaml:3: family 'a': limit: expected a whole number \(got 'many'\)"):
        load_families(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "expected a mapping 'families: {NAME: {author: ..., search: ...}}'"),
        ("families: {}\n", "families: must not be empty"),
        ("famlies:\n  a: {author: x}\n", "unknown key 'famlies'"),
        ("families:\n  '*': {author: x}\n", "family names may not be empty, contain '*'"),
        ("families:\n  '(all)': {author: x}\n", "family '(all)': names in parentheses are reserved ('(all)' is every"),
        ("families:\n  a: [x]\n", "family 'a': expected a mapping of keys to values"),
        ("families:\n  a: {filter: []}\n", "family 'a': filter: must not be empty"),
        ("families:\n  a: {author: ''}\n", "family 'a': author: must not be empty"),
        ("families:\n  a: {author: x, limit: true}\n", "family 'a': limit: expected a whole number (got True)"),
    ],
)
def test_structure_problems(tmp_path, text, expected):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    with pytest.raises(FamiliesError) as raised:
        load_families(path)
    assert expected in str(raised.value)


OPTIONS = {"repos": "REPO_ID", "limit": "--limit", "sort": "--sort", "search": "--search"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"search": "x", "limit": 0}, "--limit 0: must be at least 1"),
        ({"search": "x", "sort": "bogus"}, "--sort 'bogus': expected one of created_at, downloads"),
        ({"repos": ["/"]}, "REPO_ID '/': repo '/' is not a Hub repo id"),
        ({"repos": ["a/b"], "sort": "likes"}, "REPO_ID names the models itself: drop --sort, or drop REPO_ID"),
        ({"repos": ["a/b", "a/c@v1", "a/b"]}, "REPO_ID names a/b more than once"),
    ],
)
def test_command_line_queries_name_the_option(query, message):
    with pytest.raises(FamiliesError) as raised:
        validate_query(query, OPTIONS)
    assert str(raised.value).startswith(message)
