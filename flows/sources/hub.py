"""The Hugging Face Hub (or any Hub-compatible server), through the real ``huggingface_hub`` client, always called
with an explicit ``endpoint``. Metadata (cards, indexes, safetensors headers by Range requests) is read before any
weight; shards are downloaded one at a time into a work folder and deleted after analysis.

Safetensors headers are read here, by Range requests of the client's own session (its headers, token and error
types), rather than by ``HfApi.get_safetensors_metadata``: its parser takes any JSON for a header, so a header of the
wrong shape (a list, a tensor entry that is a string or lacks its dtype) raised a TypeError or AttributeError out of
it, and tensors whose bytes overlap or run past the end of the file passed; and a file shorter than its declared
header drew a 416 to its second read. Read here, a header is checked by the same validator as a local file's
(``weights/readers.py: parse_safetensors_header``) against the file's listed size, before any weight is downloaded.

Nothing from the network is trusted: commit shas, repo ids and file names are validated before they reach a path,
metadata files and headers are size-checked before they are read, and every request has a timeout and a bounded
number of retries (``transport.py``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..evals.vocabulary import EvalValueError, normalize_metric, single_value
from ..weights import (
    MODEL_CONFIG,
    ModelConfig,
    ModelPlan,
    Shard,
    TensorInfo,
    WeightsError,
    parse_adapter_config,
    parse_model_config,
    parse_safetensors_header,
    plan_layout,
    shards_from_index,
    weight_layout,
)
from ..weights.decoders.lora import ADAPTER_CONFIG
from ..weights.readers import MAX_HEADER_BYTES
from ..weights.tensors import corrupt_header
from .base import (
    HUB_GATED,
    HUB_INVALID,
    HUB_NOT_FOUND,
    HUB_OTHER,
    HUB_UNAVAILABLE,
    EvalResult,
    HubError,
    ModelDescription,
    ModelRef,
    check_commit_sha,
    check_repo_id,
    infer_family,
    parse_repo_spec,
)
from .cards import MAX_CARD_BYTES, parse_card, text_fact
from .listing import list_model_items, listing_parameters
from .transport import HubProtocolError, HubSettings, HubUnavailable, install

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
# The Hub's newer evaluation results live in this folder of a repo (https://huggingface.co/docs/hub/eval-results).
EVAL_RESULTS_DIR = ".eval_results/"
# An index of 100k tensors is ~10 MB; a larger one is not read (json.loads of it would take GBs of memory).
MAX_INDEX_BYTES = 32_000_000
# config.json and adapter_config.json are a few KB; a model's config with a vocabulary inside is still < 4 MB.
MAX_CONFIG_BYTES = 4_000_000
# What a listing is asked for besides the ids: the commit sha pins each repo without a request of its own.
LISTING_EXPAND = ["sha", "lastModified", "createdAt", "downloads", "likes", "gated", "private"]
# The file whose resolver HEAD request names a revision's commit (nearly every Hub repo has one; a 404 names the
# commit too).
PIN_PROBE = ".gitattributes"
_ENDPOINT = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
# The last byte of the first Range read of a safetensors file, as huggingface_hub's (``bytes=0-100000``): 97% of the
# Hub's headers fit in it (one request); a longer header is read whole by a second one.
_FIRST_HEADER_READ_END = 100_000
# The headers of a sharded checkpoint read side by side (huggingface_hub read them on a thread pool too).
_HEADER_READERS = 8


def hub_endpoint(endpoint: str | None = None) -> str:
    """The one place that reads ``HF_ENDPOINT``: the argument, else the variable, else the public Hub. An endpoint
    that is not an http(s) URL is a HubError naming where it came from."""
    chosen = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    if not _ENDPOINT.match(chosen):
        origin = "--endpoint" if endpoint else "HF_ENDPOINT"
        raise HubError(f"{origin} {chosen!r} is not a URL: expected http://HOST[:PORT] or https://HOST", HUB_INVALID)
    return chosen.rstrip("/")


class HubSource:
    """The Hugging Face Hub (or any Hub-compatible server) through ``huggingface_hub``.

    The token comes from ``HF_TOKEN`` or the user's login (huggingface_hub's own lookup); it is sent to the
    endpoint's host only, and never logged or stored. Each request is retried on its own (``transport.py``).
    """

    kind = "hub"
    deletes_shards = True

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        settings: HubSettings | None = None,
        allow_pickle: bool = True,
        gguf_file: str | None = None,
    ):
        from huggingface_hub import HfApi
        from huggingface_hub.utils import disable_progress_bars

        # wwhub draws its own progress bars (per model and per shard); the client's would interleave with them.
        disable_progress_bars()
        self.endpoint = hub_endpoint(endpoint)
        self.token = token
        self.settings = settings or HubSettings.from_env()
        install(self.settings, self.endpoint)
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self.allow_pickle = allow_pickle
        self.gguf_file = gguf_file  # which GGUF file of a GGUF-only repo to analyze (None: weight_layout picks)
        self._infos: dict[tuple[str, str], object] = {}

    def _call(self, what: str, fn: Callable):
        """Run one client call; its requests are retried by the transport, a failure becomes a HubError."""
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - classified below
            raise classify_hub_error(what, err) from err

    def _read_listed(self, what: str, fn: Callable, files: list[str] | None = None):
        """``_call`` for a file model_info listed at this commit. A 404 for it (``EntryNotFound``) says the hub's
        storage is not in step with its listing (a file pushed moments ago, or lost), not that the model lacks the
        file: an unavailable attempt, which the next scan tries again, never a failed model. ``files``: the files
        one call reads, one of which the 404 was for."""
        from huggingface_hub.errors import EntryNotFoundError

        try:
            return self._call(what, fn)
        except HubError as err:
            cause = err.__cause__
            if isinstance(cause, EntryNotFoundError):
                # The file the 404 was for, from its request, else the one file the call reads.
                url = str(getattr(getattr(cause, "response", None), "url", "") or "")
                name = url.rsplit("/", 1)[-1] if url else (files[0] if files and len(files) == 1 else "")
                lost = f" ({name})" if name and not what.endswith(name) else ""
                raise HubError(
                    f"{what}{lost}: listed at this commit, but the hub answered 404 (entry not found) when it was read",
                    HUB_UNAVAILABLE,
                ) from cause
            raise

    def check_reachable(self) -> None:
        """One small request (a one-model listing), so that a wrong or unreachable endpoint is one message, not
        one per model. Raises HubError."""
        probe = {"limit": 1, "expand": ["sha"]}
        self._call(f"hub {self.endpoint}", lambda: list(list_model_items(self.endpoint, self.token, probe)))

    def list_family(self, query: dict, family: str | None = None) -> list[ModelRef]:
        """The family's repos in listing order, each pinned to its commit: by the listing itself for a query (the
        Hub sends ``sha`` only when asked: ``expand``), by one resolver request per repo for explicit ``repos``
        (none for a repo pinned to a full sha). A repo that cannot be pinned is listed at its revision and fails
        with its reason when scanned."""
        repos = query.get("repos")
        if repos:
            refs = []
            for spec in repos:
                try:
                    repo_id, revision = parse_repo_spec(spec)
                except ValueError as err:
                    raise HubError(str(err), HUB_INVALID) from None
                refs.append(ModelRef(repo_id, self._pin(repo_id, revision or "main"), family or infer_family(repo_id)))
            return refs
        params = listing_parameters(query, LISTING_EXPAND)
        items = self._call("list models", lambda: list(list_model_items(self.endpoint, self.token, params)))
        refs, listed = [], set()
        for item in items:
            # Ids and shas from the network become file names: an item without a repo id is skipped, with a warning.
            try:
                repo_id = check_repo_id(item.get("id"), "the hub listed a repo id")
            except ValueError as err:
                logger.warning("list models: %s; skipped", err)
                continue
            # A server that ignores expand lists no sha, and one that lists no commit sha is not trusted with it:
            # the repo is pinned by its model_info when scanned (which fails it, with its reason, if that lies too).
            sha = "main"
            if item.get("sha"):
                try:
                    sha = check_commit_sha(item["sha"], repo_id)
                except HubError as err:
                    logger.warning("list models: %s; pinned by its model_info when scanned", err)
            if repo_id in listed:
                # Offset pages shift when repos come and go while they are read: a repo on two pages is one repo.
                logger.warning("list models: %s listed again on a later page; kept once", repo_id)
                continue
            listed.add(repo_id)
            refs.append(ModelRef(repo_id, sha, family or infer_family(repo_id)))
        return refs

    def _pin(self, repo_id: str, revision: str) -> str:
        """The commit sha a branch or tag points to, from the ``X-Repo-Commit`` of one resolver HEAD request (the
        Hub's rate limits are far higher for resolvers than for its API); the file need not exist, as a 404 for a
        missing file names the commit too. ``revision`` itself when it is a full sha, or when the hub does not say
        (the scan's ``model_info`` then says why)."""
        if re.fullmatch(r"[0-9a-f]{40}", revision):
            return revision
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import EntryNotFoundError

        url = hf_hub_url(repo_id, PIN_PROBE, revision=revision, endpoint=self.endpoint)
        try:
            commit = get_hf_file_metadata(url, token=self.token, timeout=self.settings.timeout).commit_hash
        except EntryNotFoundError as err:
            commit = err.response.headers.get("X-Repo-Commit") if err.response is not None else None
        except Exception as err:  # noqa: BLE001 - classified when the model is scanned
            logger.debug("%s@%s: not pinned by the resolver (%s)", repo_id, revision, err)
            return revision
        try:
            return check_commit_sha(commit, f"{repo_id}@{revision}")
        except HubError:
            return revision

    def resolve(self, ref: ModelRef) -> ModelRef:
        """Pin a ref to its commit sha (one model_info call, kept for ``describe``)."""
        what = f"{ref.repo_id}@{ref.revision}"
        info = self._call(what, lambda: self.api.model_info(ref.repo_id, revision=ref.revision, files_metadata=True))
        pinned = ModelRef(ref.repo_id, check_commit_sha(info.sha, what), ref.family)
        self._infos[(pinned.repo_id, pinned.revision)] = info
        return pinned

    def describe(self, ref: ModelRef) -> ModelDescription:
        """Card facts, eval results and shard plan of a pinned ref (headers only: no weights are downloaded)."""
        pinned = ref if (ref.repo_id, ref.revision) in self._infos else self.resolve(ref)
        info = self._infos.pop((pinned.repo_id, pinned.revision))
        files = {s.rfilename: s.size for s in info.siblings or []}
        status, facts, evals = self._card(pinned, files)
        facts.update(
            # The hub's own reading of the card wins; whatever it answers, only text reaches the lake.
            library_name=text_fact("library_name", getattr(info, "library_name", None))[0] or facts.get("library_name"),
            pipeline_tag=text_fact("pipeline_tag", getattr(info, "pipeline_tag", None))[0] or facts.get("pipeline_tag"),
            downloads=getattr(info, "downloads", None),
            likes=getattr(info, "likes", None),
            last_modified=str(info.last_modified) if getattr(info, "last_modified", None) else None,
        )
        if any(name.startswith(EVAL_RESULTS_DIR) for name in files):
            evals += self._eval_results(pinned)
        config = self._model_config(pinned, files)
        plan = self._plan(pinned, files)
        plan.config = config
        return ModelDescription(pinned, plan, status, facts, evals)

    def _card(self, ref: ModelRef, files: dict[str, int | None]) -> tuple[str, dict, list[EvalResult]]:
        """:func:`parse_card` of the README. A README over the card's size cap is not read: the card is
        ``malformed`` (like an oversized metadata block) and the weights are still scanned."""
        if "README.md" not in files:
            return parse_card(None)
        try:
            text = self._text(ref, "README.md", MAX_CARD_BYTES, files)
        except FileTooLarge as err:
            return f"malformed: README.md: {err.size_text}", {}, []
        return parse_card(text)

    def _model_config(self, ref: ModelRef, files: dict[str, int | None]) -> ModelConfig:
        """``config.json`` and ``adapter_config.json`` (small; cached like cards): what decoders read."""

        def text(name: str) -> str | None:
            return self._text(ref, name, MAX_CONFIG_BYTES, files) if name in files else None

        return ModelConfig(
            parse_model_config(text(MODEL_CONFIG), f"{ref.repo_id}/{MODEL_CONFIG}"),
            parse_adapter_config(text(ADAPTER_CONFIG), f"{ref.repo_id}/{ADAPTER_CONFIG}"),
        )

    def _eval_results(self, ref: ModelRef) -> list[EvalResult]:
        """The newer ``.eval_results/*.yaml`` results. The Hub returns them only when asked (``expand``, which
        cannot be combined with the file sizes ``resolve`` needs), so this is one more small request, made only
        for repos that have such files. A failure loses the results, not the model: it is logged and skipped."""
        try:
            info = self._call(
                f"{ref.repo_id}@{ref.revision[:12]} eval results",
                lambda: self.api.model_info(ref.repo_id, revision=ref.revision, expand=["evalResults"]),
            )
        except HubError as err:
            logger.warning("%s; the card's model-index results are still used", err)
            return []
        results = []
        for entry in getattr(info, "eval_results", None) or []:
            # An entry names a benchmark task, not a metric type: the task id is the metric to ask for.
            metric = normalize_metric(str(entry.task_id))
            try:
                value, scale = single_value(metric, entry.value)
            except EvalValueError as err:
                logger.warning("%s@%s eval results: %s: not stored", ref.repo_id, ref.revision[:12], err)
                continue
            results.append(
                EvalResult(
                    "eval_results",
                    str(entry.task_id),
                    str(entry.dataset_id),
                    "",
                    metric,
                    value,
                    scale,
                    None,
                    str(entry.task_id),
                )
            )
        return results

    def _text(self, ref: ModelRef, filename: str, max_bytes: int, files: dict[str, int | None]) -> str:
        """A small metadata file (card, index), at most ``max_bytes``: checked from the listed size before the
        download and from the bytes on disk after it."""
        from huggingface_hub import hf_hub_download

        what = f"{ref.repo_id}@{ref.revision[:12]}/{filename}"
        size = files.get(filename)
        if size is not None and size > max_bytes:
            raise FileTooLarge(what, f"{size} bytes, more than the {max_bytes} this file may have")
        path = self._read_listed(
            what,
            lambda: hf_hub_download(
                ref.repo_id,
                filename,
                revision=ref.revision,
                endpoint=self.endpoint,
                token=self.token,
                cache_dir=_metadata_cache(),
            ),
        )
        if Path(path).stat().st_size > max_bytes:
            raise FileTooLarge(what, f"more than the {max_bytes} bytes this file may have")
        return Path(path).read_text(errors="replace")

    def _index(self, ref: ModelRef, filename: str, files: dict[str, int | None]) -> list[Shard]:
        label = f"{ref.repo_id}@{ref.revision[:12]}/{filename}"
        try:
            index = json.loads(self._text(ref, filename, MAX_INDEX_BYTES, files))
        except json.JSONDecodeError as err:
            raise WeightsError(f"{label}: not valid JSON ({err})") from None
        return shards_from_index(index, label)

    def _plan(self, ref: ModelRef, files: dict[str, int | None]) -> ModelPlan:
        """The weight files :func:`flows.weights.weight_layout` chooses from the repo's file list, planned from
        the index and the safetensors headers by Range requests (no weights are downloaded)."""
        label = f"{ref.repo_id}@{ref.revision[:12]}"
        layout = weight_layout(files, allow_pickle=self.allow_pickle, gguf_file=self.gguf_file, label=label)
        return plan_layout(
            layout, files, lambda name: self._index(ref, name, files), lambda names: self._headers(ref, names, files)
        )

    def _headers(
        self, ref: ModelRef, filenames: list[str], sizes: dict[str, int | None]
    ) -> dict[str, list[TensorInfo]]:
        """Each safetensors file's tensors from its header (:meth:`_header`), several files side by side; the first
        file, in ``filenames``' order, whose header cannot be read or is corrupt raises."""
        if len(filenames) <= 1:
            return {name: self._header(ref, name, sizes.get(name)) for name in filenames}
        pool = ThreadPoolExecutor(min(_HEADER_READERS, len(filenames)), thread_name_prefix="wwhub-header")
        try:
            futures = [pool.submit(self._header, ref, name, sizes.get(name)) for name in filenames]
            return {name: future.result() for name, future in zip(filenames, futures, strict=True)}
        finally:
            pool.shutdown(cancel_futures=True)

    def _header(self, ref: ModelRef, filename: str, size: int | None) -> list[TensorInfo]:
        """A safetensors file's tensors from its header, by Range requests (no weights are read): its first 100 001
        bytes, and the rest of a longer header. The bytes at a pinned commit never change, so a header that is
        corrupt (a file under 8 bytes, a header length past the end of the file or over 25 MB, a header that is not
        JSON or not of the format's shape, tensors whose bytes overlap or run past the file's listed size) is a
        WeightsError naming the file and the problem: the model is a failed scan of this commit, which later scans
        skip until a new commit, not an attempt retried every night. The bytes checked are the file's: the
        transport retries a read that breaks off or is shorter than its ``Content-Range`` (then the model is
        unavailable)."""
        label = f"{ref.repo_id}@{ref.revision[:12]}/{filename}"
        what = f"{ref.repo_id}@{ref.revision[:12]} safetensors headers"

        def corrupt(problem: str) -> WeightsError:
            return corrupt_header(label, problem)

        def past_the_end(length: int, file_size: int) -> WeightsError:
            return corrupt(f"its header length of {length} bytes runs past the end of the {file_size}-byte file")

        def too_short(file_size: int) -> WeightsError:
            return corrupt(f"the file has {file_size} bytes, fewer than the 8 of a header length")

        if size is not None and size < 8:
            raise too_short(size)
        head = self._read_listed(what, lambda: self._byte_range(ref, filename, 0, _FIRST_HEADER_READ_END), [filename])
        if len(head) < 8:
            raise too_short(len(head))
        (length,) = struct.unpack("<Q", head[:8])
        if size is not None and length > size - 8:
            raise past_the_end(length, size)
        if length > MAX_HEADER_BYTES:
            raise corrupt(f"its header length of {length} bytes is more than the {MAX_HEADER_BYTES} a header may have")
        if len(head) >= 8 + length:
            raw = head[8 : 8 + length]
        else:
            raw = self._read_listed(what, lambda: self._byte_range(ref, filename, 8, 7 + length), [filename])
        if len(raw) < length:  # the hub listed no size: the file ends before its header does
            raise past_the_end(length, 8 + len(raw))
        return parse_safetensors_header(raw, size, label)

    def _byte_range(self, ref: ModelRef, filename: str, first: int, last: int) -> bytes:
        """Bytes ``first`` to ``last`` (or to the end of a shorter file) of a file at the pinned commit, by one Range
        request of huggingface_hub's session (its headers and token; its error types, by ``hf_raise_for_status``).
        A server that ignores Range costs no more: the transport reads the bytes asked for and answers as it would
        have."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        url = hf_hub_url(ref.repo_id, filename, revision=ref.revision, endpoint=self.endpoint)
        headers = {**build_hf_headers(token=self.token), "Range": f"bytes={first}-{last}"}
        response = get_session().get(url, headers=headers, timeout=self.settings.timeout)
        hf_raise_for_status(response)
        return response.content

    def fetch_shard(self, ref: ModelRef, shard: Shard, workdir: Path) -> Path:
        """Download one shard into ``workdir`` (resumable), pinned to the commit sha. A file whose size is not the
        one the hub listed (a body cut short behind a lying ``Content-Length``, a proxy's HTML page) is a failed
        download, a HubError of kind unavailable, never a broken checkpoint: the next scan fetches it again."""
        from huggingface_hub import hf_hub_download

        what = f"{ref.repo_id}@{ref.revision[:12]}/{shard.filename}"
        path = self._read_listed(
            what,
            lambda: hf_hub_download(
                ref.repo_id,
                shard.filename,
                revision=ref.revision,
                endpoint=self.endpoint,
                token=self.token,
                local_dir=workdir,
            ),
        )
        size = Path(path).stat().st_size
        if shard.size is not None and size != shard.size:
            Path(path).unlink(missing_ok=True)
            raise HubError(
                f"{what}: hub unavailable: downloaded {size} bytes, the hub lists {shard.size}", HUB_UNAVAILABLE
            )
        return Path(path)

    def release_shard(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def fetch_files(self, repo_id: str, select: Callable[[str], bool], repo_type: str = "model") -> list[Path]:
        """Download the files of a repo (``model`` or ``dataset``) whose names ``select`` accepts, pinned to one
        commit, into the wwhub metadata cache (evaluation results people publish: small files)."""
        from huggingface_hub import hf_hub_download

        info = self._call(
            f"{repo_type} {repo_id}", lambda: self.api.repo_info(repo_id, repo_type=repo_type, files_metadata=False)
        )
        names = sorted(s.rfilename for s in info.siblings or [] if select(s.rfilename))
        return [
            Path(
                self._call(
                    f"{repo_id}@{info.sha[:12]}/{name}",
                    lambda name=name: hf_hub_download(
                        repo_id,
                        name,
                        repo_type=repo_type,
                        revision=info.sha,
                        endpoint=self.endpoint,
                        token=self.token,
                        cache_dir=_metadata_cache(),
                    ),
                )
            )
            for name in names
        ]


class FileTooLarge(WeightsError):
    """A metadata file (card, config, index) over its size cap: the commit's file is the problem, not the hub, so a
    config or index over it is a failed scan of the commit, which later scans skip until a new commit (a card over
    it is a malformed card)."""

    def __init__(self, what: str, size_text: str):
        super().__init__(f"{what}: {size_text}")
        self.size_text = size_text


def _metadata_cache() -> str:
    """Small files (cards, indexes) go to a wwhub cache, never the user's HF cache."""
    folder = Path(os.environ.get("WWHUB_CACHE") or Path.home() / ".cache" / "wwhub" / "hub")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def classify_hub_error(what: str, err: Exception) -> HubError:
    """A user-facing HubError: one line saying what failed and what to do, and its kind (the model's status)."""
    from huggingface_hub import errors

    if isinstance(err, HubError):
        return err
    if isinstance(err, WeightsError):
        return HubError(str(err), HUB_INVALID)
    if isinstance(err, errors.GatedRepoError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        denied = " (the token sent has no access yet)" if status == 403 else ""
        return HubError(
            f"{what}: gated repository{denied}: accept its license on the Hub, then set HF_TOKEN to a token of "
            "an account with access",
            HUB_GATED,
        )
    if isinstance(err, errors.RepositoryNotFoundError):
        return HubError(f"{what}: repository not found (check the id; a private repo needs HF_TOKEN)", HUB_NOT_FOUND)
    if isinstance(err, errors.RevisionNotFoundError):
        return HubError(f"{what}: revision not found (check the branch, tag or sha)", HUB_NOT_FOUND)
    if isinstance(err, errors.EntryNotFoundError):
        return HubError(f"{what}: file not found in the repository", HUB_NOT_FOUND)
    if isinstance(err, errors.OfflineModeIsEnabled):
        return HubError(f"{what}: HF_HUB_OFFLINE is set; use --source cache to scan what is downloaded", HUB_OTHER)
    if isinstance(err, HubUnavailable):
        return HubError(f"{what}: hub unavailable: {err}", HUB_UNAVAILABLE)
    if isinstance(err, HubProtocolError):
        return HubError(f"{what}: {_first_line(err)}", HUB_INVALID)
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status is not None:
        return HubError(f"{what}: hub answered HTTP {status}: {_http_reason(err)}", HUB_OTHER)
    if isinstance(err, OSError) and "consistency" in str(err).lower():
        return HubError(f"{what}: download was corrupted in transit ({_first_line(err)})", HUB_UNAVAILABLE)
    import httpx2

    if isinstance(err, TimeoutError | ConnectionError | httpx2.TransportError):
        return HubError(f"{what}: {err.__class__.__name__}: {_first_line(err)}", HUB_UNAVAILABLE)
    return HubError(f"{what}: {err.__class__.__name__}: {_first_line(err)}", HUB_OTHER)


def _http_reason(err: Exception) -> str:
    """The first line of huggingface_hub's message, with the hub's own words (``server_message``), which it puts on
    a later line ("Bad request:" then the reason)."""
    first = _first_line(err)
    server = " ".join(str(getattr(err, "server_message", None) or "").split())[:300]
    if not server or server in first:
        return first
    return f"{first.rstrip(': ')}: {server}"


def _first_line(err: Exception) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), err.__class__.__name__)[:300]
