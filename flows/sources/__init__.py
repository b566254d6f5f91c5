"""Where models come from: the Hugging Face Hub, a local folder of repos, or the local Hugging Face cache.

Every source answers the same three questions, so the scan does not care which one it talks to:

* ``list_family(query, family)``: which models (repo id pinned to a commit) a family holds;
* ``describe(ref)``: the card facts, reported evaluation results, and the shard plan (from the index or the
  safetensors headers, read with Range requests: a few KB, no weights);
* ``fetch_shard(ref, shard, workdir)``: one shard on local disk; ``release_shard`` deletes it again (the hub
  source), or leaves it alone (the user's own folders and cache).
"""

from importlib import import_module

from .base import (
    HUB_GATED,
    HUB_INVALID,
    HUB_NOT_FOUND,
    HUB_UNAVAILABLE,
    EvalResult,
    HubError,
    ModelDescription,
    ModelRef,
    infer_family,
)

# The sources themselves are imported on first use (PEP 562): `wwhub analyze` of a local folder needs HubError and
# ModelRef, not huggingface_hub's client, the transport or the card parser's YAML (~70 ms of its start-up).
_LAZY = {
    "parse_card": "cards",
    "DEFAULT_ENDPOINT": "hub",
    "HubSource": "hub",
    "classify_hub_error": "hub",
    "hub_endpoint": "hub",
    "CacheSource": "local",
    "LocalSource": "local",
    "HubSettings": "transport",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HUB_GATED",
    "HUB_INVALID",
    "HUB_NOT_FOUND",
    "HUB_UNAVAILABLE",
    "HubSettings",
    "DEFAULT_ENDPOINT",
    "CacheSource",
    "EvalResult",
    "HubError",
    "HubSource",
    "LocalSource",
    "ModelDescription",
    "ModelRef",
    "classify_hub_error",
    "hub_endpoint",
    "infer_family",
    "parse_card",
]
