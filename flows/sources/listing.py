"""The Hub's model listing (``GET /api/models``), page by page, through huggingface_hub's shared client.

Each page is one request of the client's own session (its headers and token, the transport's timeouts and retries,
its error types by ``hf_raise_for_status``). The pages are followed here rather than by ``HfApi.list_models``, which
builds a ``ModelInfo`` of every item and follows ``Link: <url>; rel="next"`` for as long as the server sends one:

* a listing that never ends (a ``next`` page listed before, or more than :data:`MAX_LISTING_PAGES`) is a HubError
  for that family, which the scan records while the other families go on;
* an item that is not a repo (not an object) is skipped with a warning, like an item whose id or sha is not one
  (``HubSource.list_family``), so one bad item costs itself, not its family.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from .base import HUB_INVALID, HubError, _as_list

logger = logging.getLogger(__name__)

# 10 million repos at the Hub's 1 000 a page: more than the whole Hub, far more than any family.
MAX_LISTING_PAGES = 10_000
# huggingface_hub's sort names (``ModelSort_T``, the families file's) as the API spells them.
_SORT_PARAMETER = {"created_at": "createdAt", "last_modified": "lastModified", "trending_score": "trendingScore"}


def listing_parameters(query: dict, expand: list[str]) -> dict:
    """The ``/api/models`` parameters of a family's query (``author``, ``search``, ``filter``, ``sort``, ``limit``),
    as ``HfApi.list_models`` sends them."""
    params: dict = {k: query[k] for k in ("author", "search", "limit") if query.get(k) is not None}
    if query.get("filter"):
        params["filter"] = _as_list(query["filter"])
    if query.get("sort") is not None:
        params["sort"] = _SORT_PARAMETER.get(query["sort"], query["sort"])
    params["expand"] = expand
    return params


def list_model_items(endpoint: str, token: str | None, params: dict) -> Iterator[dict]:
    """The listing's items (JSON objects), page after page, at most ``params['limit']`` of them. Raises HubError
    (kind invalid) for a listing that loops or never ends, and the client's errors for a page it cannot get."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = build_hf_headers(token=token)
    limit = params.get("limit")
    url: str | None = f"{endpoint}/api/models"
    seen: set[str] = set()
    listed = 0
    while url is not None:
        if len(seen) >= MAX_LISTING_PAGES:
            raise HubError(f"list models: more than {MAX_LISTING_PAGES} pages: stopped", HUB_INVALID)
        # The first page carries the parameters; each next link carries them itself.
        response = get_session().get(url, params=params if not seen else None, headers=headers)
        seen.add(str(response.request.url))
        hf_raise_for_status(response)
        page = response.json()
        if not isinstance(page, list):
            raise HubError(f"list models: the hub answered a {type(page).__name__}, not a list of repos", HUB_INVALID)
        for item in page:
            listed += 1  # the hub's limit counts what it sends, repos or not
            if isinstance(item, dict):
                yield item
            else:
                logger.warning("list models: a listed item is not a repo (%s); skipped", repr(item)[:80])
            if limit is not None and listed >= limit:
                return
        url = response.links.get("next", {}).get("url")
        if url is not None and url in seen:
            raise HubError(
                f"list models: the next page {url} was listed before (a listing that loops): stopped", HUB_INVALID
            )
