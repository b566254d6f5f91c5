"""Where models come from: the Hugging Face Hub, a local folder of repos, or the local Hugging Face cache.

Every source answers the same three questions, so the scan does not care which one it talks to:

* ``list_family(query, family)``: which models (repo id pinned to a commit) a family holds;
* ``describe(ref)``: the card facts, reported evaluation results, and the shard plan (from the index or the
  safetensors headers, read with Range requests: a few KB, no weights);
* ``fetch_shard(ref, shard, workdir)``: one shard on local disk; ``release_shard`` deletes it again (the hub
  source), or leaves it alone (the user's own folders and cache).
"""

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
from .cards import parse_card
from .hub import DEFAULT_ENDPOINT, HubSource, classify_hub_error, hub_endpoint
from .local import CacheSource, LocalSource
from .transport import HubSettings

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
