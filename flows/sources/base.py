"""What every source shares: model references, descriptions, errors, family queries and family names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..weights import ModelPlan

# Families are queries; these are the keys a families.yaml entry (or the CLI) may use.
QUERY_KEYS = ("repos", "author", "search", "filter", "sort", "limit")
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


class HubError(Exception):
    """A hub call failed; ``transient`` says whether retrying may help (5xx, timeouts, broken connections)."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


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
    card_status: str = "ok"  # ok | missing | malformed: ...
    facts: dict = field(default_factory=dict)
    evals: list[EvalResult] = field(default_factory=list)


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
