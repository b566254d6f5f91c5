"""Where models come from: the Hugging Face Hub, a local folder of repos, or the local Hugging Face cache.

Every source answers the same three questions, so the scan does not care which one it talks to:

* ``list_family(family)``: which models (repo id pinned to a commit) a family holds;
* ``describe(ref)``: the card facts, reported evaluation results, and the shard plan (from the index or the
  safetensors headers, read with Range requests: a few KB, no weights);
* ``fetch_shard(ref, shard, workdir)``: one shard on local disk; ``release_shard`` deletes it again (the hub
  source), or leaves it alone (the user's own folders and cache).

The hub client is the real ``huggingface_hub``, always called with an explicit ``endpoint``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .weights import (
    INTEGER_DTYPES,
    PICKLE_INDEX,
    SAFETENSORS_INDEX,
    ModelPlan,
    Shard,
    TensorInfo,
    UnsupportedWeights,
    WeightsError,
    plan_local,
    shards_from_index,
)

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
# The Hub's newer evaluation results live in this folder of a repo (https://huggingface.co/docs/hub/eval-results).
EVAL_RESULTS_DIR = ".eval_results/"
# Families are queries; these are the keys a families.yaml entry (or the CLI) may use.
QUERY_KEYS = ("repos", "author", "search", "filter", "sort", "limit")
# A size ("160m", "1.4b", "8x7b") or a variant version ("v2") ends the family part of a name; a bare version
# ("3.2" in Llama-3.2-1B) belongs to the family.
_SIZE_TOKEN = re.compile(r"^(\d+(\.\d+)?[kmbt]|\d+x\d+(\.\d+)?[kmbt]?|v\d+(\.\d+)*)$", re.IGNORECASE)


def hub_endpoint(endpoint: str | None = None) -> str:
    """The one place that reads ``HF_ENDPOINT``: the argument, else the variable, else the public Hub."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


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
    metric: str
    value: float


@dataclass
class ModelDescription:
    ref: ModelRef
    plan: ModelPlan
    card_status: str = "ok"  # ok | missing | malformed: ...
    facts: dict = field(default_factory=dict)
    evals: list[EvalResult] = field(default_factory=list)


def parse_card(text: str | None) -> tuple[str, dict, list[EvalResult]]:
    """(card_status, metadata facts, model-index eval results) of a README.md. Never raises."""
    if text is None:
        return "missing", {}, []
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(text, ignore_metadata_errors=False)
        data = card.data
    except Exception as err:  # noqa: BLE001 - any parse failure of user-written YAML is "malformed"
        return f"malformed: {err.__class__.__name__}: {str(err).splitlines()[0][:200]}", {}, []
    facts = {
        "library_name": getattr(data, "library_name", None),
        "pipeline_tag": getattr(data, "pipeline_tag", None),
        "base_model": _first(getattr(data, "base_model", None)),
    }
    evals = []
    for result in getattr(data, "eval_results", None) or []:
        try:
            value = float(result.metric_value)
        except (TypeError, ValueError):
            continue
        evals.append(
            EvalResult(
                source="model-index",
                task=str(result.task_type or ""),
                dataset=str(result.dataset_name or result.dataset_type or ""),
                split=str(result.dataset_split or ""),
                metric=str(result.metric_type or result.metric_name or ""),
                value=value,
            )
        )
    return "ok", facts, evals


def _first(value):
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def plan_from_headers(headers: dict[str, list[TensorInfo]], order: list[Shard] | None) -> ModelPlan:
    """A plan from per-file tensor lists, in index order when an index gave one."""
    if order:
        for shard in order:
            known = {t.name: t for t in headers.get(shard.filename, [])}
            shard.tensors = [known.get(t.name, t) for t in shard.tensors]
        return ModelPlan(order)
    return ModelPlan([Shard(name, tensors) for name, tensors in headers.items()])


def quantized_reason(plan: ModelPlan) -> str | None:
    """Why a model is quantized (packed integer weights next to their scales or zero points), or None.

    Integer tensors alone are not enough: index buffers such as ``position_ids`` are integers too."""
    names = {t.name for shard in plan.shards for t in shard.tensors}
    packed = [t for shard in plan.shards for t in shard.tensors if t.dtype in INTEGER_DTYPES and len(t.shape) >= 2]
    scaled = [t for t in packed if any(t.name.rsplit(".", 1)[0] + suffix in names for suffix in _QUANT_SIDECARS)]
    if scaled:
        return (
            f"quantized weights ({len(scaled)} packed {scaled[0].dtype} tensors with scales, "
            f"e.g. {scaled[0].name}): not analyzable as float matrices"
        )
    return None


_QUANT_SIDECARS = (".scales", ".qzeros", ".SCB", ".weight_scale", ".g_idx", ".absmax")


class LocalSource:
    """A folder of repos, ``ROOT/org/name/`` with ``README.md`` and weights: the demo and air-gapped scans.

    A local repo has no commit; its revision is a fingerprint (sha1 of file names, sizes and modification times),
    so an edited folder is scanned again and an untouched one is skipped.
    """

    kind = "local"
    deletes_shards = False

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise HubError(f"local source {self.root} is not a folder")

    def _repo_dir(self, repo_id: str) -> Path:
        return self.root / repo_id

    def list_family(self, query: dict, family: str | None = None) -> list[ModelRef]:
        repos = [r.split("@")[0] for r in query.get("repos") or []]
        if not repos:
            repos = sorted(f"{p.parent.name}/{p.name}" for p in self.root.glob("*/*") if p.is_dir())
            author, search = query.get("author"), (query.get("search") or "").lower()
            repos = [r for r in repos if (not author or r.split("/")[0] == author) and search in r.lower()]
            tags = _as_list(query.get("filter"))
            if tags:
                repos = [r for r in repos if set(tags) <= set(self._tags(r))]
            if query.get("limit"):
                repos = repos[: int(query["limit"])]
        return [ModelRef(r, self._fingerprint(r), family or infer_family(r)) for r in repos]

    def _tags(self, repo_id: str) -> list[str]:
        readme = self._repo_dir(repo_id) / "README.md"
        status, facts, _ = parse_card(readme.read_text() if readme.exists() else None)
        tags = []
        if status == "ok":
            from huggingface_hub import ModelCard

            data = ModelCard(readme.read_text()).data
            tags = list(getattr(data, "tags", None) or [])
            if facts.get("base_model"):
                tags.append(f"base_model:{facts['base_model']}")
        return tags

    def _fingerprint(self, repo_id: str) -> str:
        folder = self._repo_dir(repo_id)
        if not folder.is_dir():
            return "missing"
        digest = hashlib.sha1()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def resolve(self, ref: ModelRef) -> ModelRef:
        """Local refs are pinned when listed (the fingerprint is the revision)."""
        if ref.revision == "missing":
            raise HubError(f"{ref.repo_id}: not found in the {self.kind} source")
        return ref

    def describe(self, ref: ModelRef) -> ModelDescription:
        folder = self._repo_dir(ref.repo_id)
        if not folder.is_dir():
            raise HubError(f"{ref.repo_id}: no folder {folder} in the local source")
        _, plan = plan_local(folder)
        readme = folder / "README.md"
        status, facts, evals = parse_card(readme.read_text(errors="replace") if readme.exists() else None)
        return ModelDescription(ref, plan, status, facts, evals)

    def fetch_shard(self, ref: ModelRef, shard: Shard, workdir: Path) -> Path:
        return self._repo_dir(ref.repo_id) / shard.filename

    def release_shard(self, path: Path) -> None:
        """Local files belong to the user: nothing is deleted."""


class CacheSource(LocalSource):
    """What a user already downloaded: ``huggingface_hub.scan_cache_dir``, no network. Revisions are real shas."""

    kind = "cache"

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        from huggingface_hub import scan_cache_dir

        try:
            info = scan_cache_dir(cache_dir)
        except Exception as err:  # noqa: BLE001 - CacheNotFound and corrupt caches alike
            raise HubError(f"cannot read the Hugging Face cache {cache_dir or '(default)'}: {err}") from err
        self.snapshots: dict[tuple[str, str], Path] = {}
        self.latest: dict[str, str] = {}
        for repo in info.repos:
            if repo.repo_type != "model":
                continue
            for revision in sorted(repo.revisions, key=lambda r: r.last_modified):
                self.snapshots[(repo.repo_id, revision.commit_hash)] = Path(revision.snapshot_path)
                self.latest[repo.repo_id] = revision.commit_hash

    def list_family(self, query: dict, family: str | None = None) -> list[ModelRef]:
        requested = [r.split("@")[0] for r in query.get("repos") or []]
        repos = requested or sorted(self.latest)
        if not requested:
            author, search = query.get("author"), (query.get("search") or "").lower()
            repos = [r for r in repos if (not author or r.split("/")[0] == author) and search in r.lower()]
        refs = []
        for repo_id in repos:
            sha = self.latest.get(repo_id, "missing")
            refs.append(ModelRef(repo_id, sha, family or infer_family(repo_id)))
        return refs

    def _snapshot(self, ref: ModelRef) -> Path:
        try:
            return self.snapshots[(ref.repo_id, ref.revision)]
        except KeyError:
            raise HubError(f"{ref.repo_id}@{ref.revision} is not in the Hugging Face cache") from None

    def describe(self, ref: ModelRef) -> ModelDescription:
        folder = self._snapshot(ref)
        _, plan = plan_local(folder)
        readme = folder / "README.md"
        status, facts, evals = parse_card(readme.read_text(errors="replace") if readme.exists() else None)
        return ModelDescription(ref, plan, status, facts, evals)

    def fetch_shard(self, ref: ModelRef, shard: Shard, workdir: Path) -> Path:
        return self._snapshot(ref) / shard.filename


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class HubSource:
    """The Hugging Face Hub (or any Hub-compatible server) through ``huggingface_hub``.

    The token comes from ``HF_TOKEN`` or the user's login (huggingface_hub's own lookup) and is never logged.
    Transient errors (5xx, timeouts, dropped connections) are retried with exponential backoff.
    """

    kind = "hub"
    deletes_shards = True

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        retries: int = 4,
        backoff: float = 0.5,
        allow_pickle: bool = True,
    ):
        from huggingface_hub import HfApi
        from huggingface_hub.utils import disable_progress_bars

        # wwhub draws its own progress bars (per model and per shard); the client's would interleave with them.
        disable_progress_bars()
        self.endpoint = hub_endpoint(endpoint)
        self.token = token
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self.retries = retries
        self.backoff = backoff
        self.allow_pickle = allow_pickle
        self._infos: dict[tuple[str, str], object] = {}

    def _call(self, what: str, fn: Callable):
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as err:  # noqa: BLE001 - classified below
                error = classify_hub_error(what, err)
                if not error.transient or attempt == self.retries:
                    raise error from err
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def list_family(self, query: dict, family: str | None = None) -> list[ModelRef]:
        repos = query.get("repos")
        if repos:
            refs = []
            for spec in repos:
                repo_id, _, revision = spec.partition("@")
                refs.append(ModelRef(repo_id, revision or "main", family or infer_family(repo_id)))
            return refs
        kwargs = {k: query[k] for k in ("author", "search", "sort", "limit") if query.get(k) is not None}
        if query.get("filter"):
            kwargs["filter"] = _as_list(query["filter"])
        models = self._call("list models", lambda: list(self.api.list_models(**kwargs)))
        return [ModelRef(m.id, m.sha or "main", family or infer_family(m.id)) for m in models]

    def resolve(self, ref: ModelRef) -> ModelRef:
        """Pin a ref to its commit sha (one model_info call, kept for ``describe``)."""
        info = self._call(
            f"{ref.repo_id}@{ref.revision}",
            lambda: self.api.model_info(ref.repo_id, revision=ref.revision, files_metadata=True),
        )
        pinned = ModelRef(ref.repo_id, info.sha, ref.family)
        self._infos[(pinned.repo_id, pinned.revision)] = info
        return pinned

    def describe(self, ref: ModelRef) -> ModelDescription:
        """Card facts, eval results and shard plan of a pinned ref (headers only: no weights are downloaded)."""
        pinned = ref if (ref.repo_id, ref.revision) in self._infos else self.resolve(ref)
        info = self._infos.pop((pinned.repo_id, pinned.revision))
        files = {s.rfilename: s.size for s in info.siblings or []}
        card_text = self._text(pinned, "README.md") if "README.md" in files else None
        status, facts, evals = parse_card(card_text)
        facts.update(
            library_name=getattr(info, "library_name", None) or facts.get("library_name"),
            pipeline_tag=getattr(info, "pipeline_tag", None) or facts.get("pipeline_tag"),
            downloads=getattr(info, "downloads", None),
            likes=getattr(info, "likes", None),
            last_modified=str(info.last_modified) if getattr(info, "last_modified", None) else None,
        )
        if any(name.startswith(EVAL_RESULTS_DIR) for name in files):
            evals += self._eval_results(pinned)
        plan = self._plan(pinned, files)
        return ModelDescription(pinned, plan, status, facts, evals)

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
            try:
                value = float(entry.value)
            except (TypeError, ValueError):
                continue
            # An entry names a benchmark task, not a metric type: the task id is the metric to ask for.
            results.append(
                EvalResult("eval_results", str(entry.task_id), str(entry.dataset_id), "", str(entry.task_id), value)
            )
        return results

    def _text(self, ref: ModelRef, filename: str) -> str:
        from huggingface_hub import hf_hub_download

        path = self._call(
            f"{ref.repo_id}/{filename}",
            lambda: hf_hub_download(
                ref.repo_id,
                filename,
                revision=ref.revision,
                endpoint=self.endpoint,
                token=self.token,
                cache_dir=_metadata_cache(),
            ),
        )
        return Path(path).read_text(errors="replace")

    def _plan(self, ref: ModelRef, files: dict[str, int | None]) -> ModelPlan:
        safetensors = sorted(f for f in files if f.endswith(".safetensors") and "/" not in f)
        if SAFETENSORS_INDEX in files:
            index = json.loads(self._text(ref, SAFETENSORS_INDEX))
            order = shards_from_index(index, f"{ref.repo_id}/{SAFETENSORS_INDEX}")
        elif safetensors:
            order = [Shard(f) for f in safetensors]
        else:
            return self._pickle_plan(ref, files)
        headers = self._headers(ref, [s.filename for s in order])
        plan = plan_from_headers(headers, order if SAFETENSORS_INDEX in files else None)
        for shard in plan.shards:
            shard.size = files.get(shard.filename)
        return plan

    def _pickle_plan(self, ref: ModelRef, files: dict[str, int | None]) -> ModelPlan:
        pickles = sorted(f for f in files if re.fullmatch(r"pytorch_model(-\d+-of-\d+)?\.bin", f))
        if not pickles:
            raise WeightsError(f"{ref.repo_id}@{ref.revision}: no *.safetensors or pytorch_model*.bin weights")
        if not self.allow_pickle:
            raise UnsupportedWeights(f"{ref.repo_id}: only pickled .bin weights, and --no-pickle was given")
        if PICKLE_INDEX in files:
            order = shards_from_index(json.loads(self._text(ref, PICKLE_INDEX)), f"{ref.repo_id}/{PICKLE_INDEX}")
            return ModelPlan(order, fmt="pickle")
        return ModelPlan([Shard(p, size=files.get(p)) for p in pickles], fmt="pickle")

    def _headers(self, ref: ModelRef, filenames: list[str]) -> dict[str, list[TensorInfo]]:
        """Each shard's tensor list from its safetensors header, by Range requests (no weights are read)."""
        meta = self._call(
            f"{ref.repo_id} safetensors headers",
            lambda: self.api.get_safetensors_metadata(ref.repo_id, revision=ref.revision),
        )
        headers: dict[str, list[TensorInfo]] = {}
        for filename, file_meta in meta.files_metadata.items():
            headers[filename] = [TensorInfo(name, t.dtype, tuple(t.shape)) for name, t in file_meta.tensors.items()]
        return {f: headers.get(f, []) for f in filenames}

    def fetch_shard(self, ref: ModelRef, shard: Shard, workdir: Path) -> Path:
        """Download one shard into ``workdir`` (resumable), pinned to the commit sha."""
        from huggingface_hub import hf_hub_download

        path = self._call(
            f"{ref.repo_id}@{ref.revision[:12]}/{shard.filename}",
            lambda: hf_hub_download(
                ref.repo_id,
                shard.filename,
                revision=ref.revision,
                endpoint=self.endpoint,
                token=self.token,
                local_dir=workdir,
            ),
        )
        return Path(path)

    def release_shard(self, path: Path) -> None:
        path.unlink(missing_ok=True)


def _metadata_cache() -> str:
    """Small files (cards, indexes) go to a wwhub cache, never the user's HF cache."""
    folder = Path(os.environ.get("WWHUB_CACHE") or Path.home() / ".cache" / "wwhub" / "hub")
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def classify_hub_error(what: str, err: Exception) -> HubError:
    """A user-facing HubError with a hint, and whether the failure is worth retrying."""
    from huggingface_hub import errors

    name = err.__class__.__name__
    if isinstance(err, errors.RepositoryNotFoundError | errors.GatedRepoError):
        return HubError(f"{what}: repository not found or gated (check the id, or pass a token with access)")
    if isinstance(err, errors.RevisionNotFoundError):
        return HubError(f"{what}: revision not found")
    if isinstance(err, errors.EntryNotFoundError):
        return HubError(f"{what}: file not found in the repository")
    if isinstance(err, WeightsError | HubError):
        return err if isinstance(err, HubError) else HubError(str(err))
    status = getattr(getattr(err, "response", None), "status_code", None)
    transient_names = (
        "Timeout",
        "ConnectError",
        "RemoteProtocolError",
        "ReadError",
        "ConnectionError",
        "IncompleteRead",
        "ChunkedEncodingError",
    )
    if status is not None and (status >= 500 or status == 429):
        return HubError(f"{what}: hub answered HTTP {status}", transient=True)
    if any(t in name for t in transient_names) or isinstance(err, TimeoutError | ConnectionError):
        return HubError(f"{what}: {name}: {err}", transient=True)
    if isinstance(err, OSError) and "consistency" in str(err).lower():
        return HubError(f"{what}: download was corrupted in transit ({err})", transient=True)
    return HubError(f"{what}: {name}: {err}")
