"""What every source shares: model references, descriptions, errors, family queries and family names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..weights import ModelPlan

# A size ("160m", "1.4b", "8x7b") or a variant version ("v2") ends the family part of a name; a bare version
# ("3.2" in Llama-3.2-1B) belongs to the family.
_SIZE_TOKEN = re.compile(r"^(\d+(\.\d+)?[kmbt]|\d+x\d+(\.\d+)?[kmbt]?|v\d+(\.\d+)*)$", re.IGNORECASE)


def infer_family(repo_id: str) -> str:
    """Family of a repo from its name: the leading name tokens before the first size or version token.

    ``EleutherAI/pythia-160m`` → ``pythia``; ``EleutherAI/pythia-1.4b-deduped`` → ``pythia``;
    ``Qwen/Qwen2.5-0.5B-Instruct`` → ``qwen2.5``; ``meta-llama/Llama-3.2-1B`` → ``llama-3.2``;
    ``openai-community/gpt2`` → ``gpt2``. A name without such a
    token is its own family (``bert-base-uncased``). Name families explicitly in families.yaml to override.
    """
    name = repo_id.split("/")[-1].lower()
    tokens = re.split(r"[-_]", name)
    kept = []
    for token in tokens:
        if _SIZE_TOKEN.match(token) and kept:
            break
        kept.append(token)
    return "-".join(kept) or name


# A commit sha as the Hub answers it: it becomes part of file names in the lake, so nothing else is accepted.
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
# A branch, tag or sha a user asks for (``refs/pr/1`` included); never ``..``, never absolute.
_REVISION = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


# huggingface_hub's validate_repo_id (moon-landing's Names.ts), whose REPO_ID_REGEX is ASCII: org/name or name, each
# part 1 to 96 of [A-Za-z0-9_.-] starting and ending with a letter, digit or '_' (its \b), no '--' or '..', no '.git'
# at the end. Written here (a test holds it to huggingface_hub's) because importing that validator brings the hub
# client's errors and HTTP library (~30 ms of a local scan's start-up).
_REPO_ID_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"(?:{_REPO_ID_PART}/)?{_REPO_ID_PART}")


def check_repo_id(repo_id: object, what: str = "repo id") -> str:
    """``repo_id`` if it is a Hub repo id (``org/name`` or ``name``: letters, digits, ``-_.``, no ``--``/``..``,
    at most 96 characters each, huggingface_hub's own rule), else ValueError naming it."""
    if repo_id is None:
        raise ValueError(f"{what} is empty: expected org/name")
    if not (
        isinstance(repo_id, str)
        and _REPO_ID.fullmatch(repo_id)
        and "--" not in repo_id
        and ".." not in repo_id
        and not repo_id.endswith(".git")
    ):
        raise ValueError(f"{what} {repo_id!r} is not a Hub repo id: expected org/name (letters, digits, '-', '_', '.')")
    return str(repo_id)


def check_revision(revision: str, what: str = "revision") -> str:
    if not _REVISION.match(revision) or ".." in revision.split("/"):
        raise ValueError(f"{what} {revision!r} is not a branch, tag or commit sha")
    return revision


def parse_repo_spec(spec: str) -> tuple[str, str | None]:
    """``org/name[@revision]`` → (repo id, revision or None), both validated; ValueError naming the spec."""
    repo_id, at, revision = spec.partition("@")
    check_repo_id(repo_id, "repo")
    if at:
        check_revision(revision, f"repo {spec!r}: revision")
    return repo_id, revision or None


def check_commit_sha(sha: object, what: str) -> str:
    """A commit sha from the network: 40 lowercase hex digits, else HubError (it would become a file name)."""
    if not isinstance(sha, str) or not _COMMIT_SHA.match(sha):
        raise HubError(f"{what}: the hub answered an invalid commit sha {str(sha)[:80]!r}", kind=HUB_INVALID)
    return sha


# What went wrong with a hub call, as the scan records it (a model's status and the exit code follow from it).
HUB_NOT_FOUND = "not_found"  # repo, revision or file does not exist (or is private)
HUB_GATED = "gated"  # exists, but needs the license accepted and a token with access
HUB_UNAVAILABLE = "unavailable"  # connection refused, timeouts, 5xx/429 after the bounded retries
HUB_INVALID = "invalid"  # the hub answered something unsafe or malformed (ids, paths, header sizes)
HUB_OTHER = "other"


class HubError(Exception):
    """A hub call failed; ``kind`` says why (one of the HUB_* values above)."""

    def __init__(self, message: str, kind: str = HUB_OTHER):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ModelRef:
    repo_id: str
    revision: str  # the commit sha when resolved; a branch/tag/sha request otherwise
    family: str


@dataclass
class EvalResult:
    source: str
    task: str
    dataset: str
    split: str
    metric: str  # normalised (flows.evals.vocabulary); raw_metric keeps the source's spelling
    value: float
    scale: str | None = None  # 'percent' | 'fraction' for proportions, None otherwise
    n_shot: int | None = None
    raw_metric: str = ""
    stderr: float | None = None


@dataclass
class ModelDescription:
    ref: ModelRef
    plan: ModelPlan
    card_status: str = "ok"  # ok | missing | malformed: ... | ignored FIELD (TYPE, not text)[; invalid model-index ...]
    facts: dict = field(default_factory=dict)
    evals: list[EvalResult] = field(default_factory=list)


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
