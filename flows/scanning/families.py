"""Families: named model queries (``families.yaml``, or the query options of ``wwhub scan``), validated against one
declared schema.

A problem is reported with where it is: for a file, ``FILE:LINE: family NAME: KEY: what is wrong (got VALUE)``,
every problem at once, one line each; for the command line, the option and its value. Validated queries are
handed on as plain dicts (they travel to Prefect tasks and Dask workers).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from ..sources.base import parse_repo_spec

# huggingface_hub's ModelSort_T (hf_api.py), spelled out so that validating a file does not import the client;
# tests/flows/scanning/test_families.py checks that the two agree.
SORT_KEYS = ("created_at", "downloads", "last_modified", "likes", "trending_score")
# The keys that choose models; sort and limit only order and cut what they chose.
SELECTORS = ("repos", "author", "search", "filter")


def _repo_spec(spec: str) -> str:
    parse_repo_spec(spec)
    return spec


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
RepoSpec = Annotated[str, AfterValidator(_repo_spec)]
# A single tag is a list of one: the Hub's filter takes either.
Tags = Annotated[list[Text], BeforeValidator(lambda value: [value] if isinstance(value, str) else value)]


class FamilyQuery(BaseModel):
    """One family: explicit ``repos`` (``org/name[@revision]``), or a hub query (author, search, filter tags),
    ordered by ``sort`` and cut to ``limit`` models."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    repos: list[RepoSpec] | None = Field(None, min_length=1)
    author: Text | None = None
    search: Text | None = None
    filter: Tags | None = Field(None, min_length=1)
    sort: Literal[SORT_KEYS] | None = None  # type: ignore[valid-type]
    limit: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _repos_or_query(self, info: ValidationInfo) -> FamilyQuery:
        query_keys = [k for k in ("author", "search", "filter", "sort", "limit") if getattr(self, k) is not None]
        if self.repos is not None and query_keys:
            raise ValueError(f"repos names the models itself: drop {', '.join(query_keys)}, or drop repos")
        repeated = sorted({spec for spec in self.repos or () if self.repos.count(spec) > 1})
        if repeated:
            # The family's memberships record each listed repo at its rank: a repeat would be a member twice.
            raise ValueError(f"repos names {', '.join(repeated)} more than once")
        if (info.context or {}).get("selector_required") and not any(getattr(self, k) for k in SELECTORS):
            raise ValueError(
                f"choose models with one of {', '.join(SELECTORS)} (sort and limit alone would list the whole Hub)"
            )
        return self

    def as_query(self) -> dict:
        return self.model_dump(exclude_none=True)


def check_family_name(name: str) -> str:
    """``name`` if it can name a family, else ValueError saying why (the caller names it): not empty, no leading
    space, no ``*`` (the inferred family), not in parentheses: the leaderboard's pooled rows are the family
    ``(all)``, and a family of that name would be counted among them."""
    if not name or name[0].isspace() or "*" in name:
        raise ValueError("family names may not be empty, contain '*' or start with a space")
    if name.startswith("(") and name.endswith(")"):
        raise ValueError("names in parentheses are reserved ('(all)' is every family pooled)")
    return name


class FamiliesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    families: dict[Annotated[str, AfterValidator(check_family_name)], FamilyQuery] = Field(min_length=1)


class FamiliesError(ValueError):
    """A families file or a query with problems; the message has one line per problem."""


def load_families(path: str | Path) -> dict[str, dict]:
    """``families.yaml`` → ``{name: query}``. Raises FamiliesError listing every problem with its line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FamiliesError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise FamiliesError(f"{path}: cannot read the families file ({err})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        raise FamiliesError(_yaml_syntax_message(path, err)) from None
    except yaml.YAMLError as err:
        raise FamiliesError(f"{path}: not valid YAML ({err})") from None
    problems = _duplicate_keys(path, root)
    try:
        families = FamiliesFile.model_validate(data, context={"selector_required": True}).families
    except ValidationError as err:
        problems += [_file_problem(path, root, error) for error in err.errors()]
    if problems:
        count = f"{len(problems)} problems" if len(problems) > 1 else "1 problem"
        raise FamiliesError(f"{path}: {count}:\n  " + "\n  ".join(problems))
    return {name: query.as_query() for name, query in families.items()}


# Sort keys by which a new repo starts at the bottom (it has no downloads, likes or trend yet).
POPULARITY_SORTS = ("downloads", "likes", "trending_score")


def admission_warnings(families: dict[str, dict]) -> list[str]:
    """Families that can hardly admit new members: fine-tunes of a base (a ``base_model:`` filter) sorted by
    popularity and cut by a limit list the same popular repos every night, since a new fine-tune starts with no
    downloads. One line per family, suggesting what would admit new ones."""
    warnings = []
    for name, query in families.items():
        tags = query.get("filter") or []
        tags = [tags] if isinstance(tags, str) else tags
        if (
            query.get("limit")
            and query.get("sort") in POPULARITY_SORTS
            and any(t.startswith("base_model:") for t in tags)
        ):
            label = f"family {name}" if name != "*" else "the query"
            warnings.append(
                f"{label}: a base_model filter sorted by {query['sort']} with limit {query['limit']} lists the same "
                f"popular fine-tunes every night and admits new ones only once they are popular; use sort: "
                "created_at (the newest) or no limit to follow new fine-tunes"
            )
    return warnings


def validate_query(query: dict, option_names: dict[str, str]) -> dict:
    """A query built from command-line options, checked by the same schema. ``option_names`` maps a key to the
    option the user typed (``limit`` → ``--limit``). Raises FamiliesError naming the option and its value."""
    try:
        return FamilyQuery.model_validate(query).as_query()
    except ValidationError as err:
        lines = []
        for error in err.errors():
            key = next((str(part) for part in error["loc"] if isinstance(part, str)), "")
            option = option_names.get(key, key)
            value = error.get("input")
            shown = f" {value!r}" if key and not isinstance(value, dict) else ""
            text = _problem_text(error)
            if not option:  # a problem of the whole query: say it in the options the user typed
                for name, typed in option_names.items():
                    text = re.sub(rf"\b{name}\b", typed, text)
            lines.append(f"{option}{shown}: {text}" if option else text)
        raise FamiliesError("\n".join(lines)) from None


def _problem_text(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key (known: {', '.join(FamilyQuery.model_fields)})"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "string_type":
        return "expected text"
    if kind == "int_type":
        return "expected a whole number"
    if kind == "list_type":
        return "expected a list, e.g. [org/a, org/b]"
    if kind in ("dict_type", "model_type"):
        return "expected a mapping of keys to values"
    if kind == "greater_than_equal":
        return f"must be at least {error['ctx']['ge']}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "literal_error":
        return f"expected one of {', '.join(SORT_KEYS)}"
    return error["msg"]


def _file_problem(path: Path, root: yaml.Node | None, error: dict) -> str:
    loc = [part for part in error["loc"] if part != "[key]"]
    if not loc and error["type"] in ("dict_type", "model_type"):
        return f"{path}:1: expected a mapping 'families: {{NAME: {{author: ..., search: ...}}}}'"
    node = _node_at(root, loc, key=error["type"] == "extra_forbidden" or "[key]" in error["loc"])
    line = node.start_mark.line + 1 if node is not None else 1
    where = f"family {loc[1]!r}" if len(loc) >= 2 and loc[0] == "families" else ".".join(map(str, loc))
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[2:]).lstrip(".")
    if error["type"] == "extra_forbidden":
        return f"{path}:{line}: {where}: unknown key {loc[-1]!r} (known: {', '.join(FamilyQuery.model_fields)})"
    value = error.get("input")
    quiet = isinstance(value, dict | list) or error["type"] in ("missing", "value_error")
    got = "" if quiet else f" (got {value!r})"
    return f"{path}:{line}: {where}: {key + ': ' if key else ''}{_problem_text(error)}{got}"


def _node_at(root: yaml.Node | None, loc: list, key: bool) -> yaml.Node | None:
    """The YAML node at a validation error's location (its key node when ``key``), for its line number."""
    node = root
    found = root
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if match is None:
                return found
            found = match[0] if (last and key) else match[1]
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = found = node.value[part]
        else:
            return found
    return found


def _duplicate_keys(path: Path, root: yaml.Node | None) -> list[str]:
    """YAML silently keeps the last of two equal keys; a families file with one is almost always a paste error."""
    problems = []
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if isinstance(key, yaml.ScalarNode) and key.value in seen:
                    problems.append(
                        f"{path}:{line}: duplicate key {key.value!r} (first on line {seen[key.value]}): "
                        "YAML would keep only the last one"
                    )
                seen.setdefault(str(key.value), line)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return sorted(problems, key=lambda p: int(p.split(":")[1]))


def _yaml_syntax_message(path: Path, err: yaml.MarkedYAMLError) -> str:
    """One or two lines instead of PyYAML's five to eight: where, what, and the usual cause."""
    mark = err.problem_mark or err.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = err.problem or err.context or "invalid YAML"
    if "\\t" in problem or "\t" in problem:
        hint = "YAML indents with spaces, not tabs"
    else:
        hint = "check the indentation and the ':' of this line and the one above"
    return f"{where}: not valid YAML: {problem}\n  ({hint})"
