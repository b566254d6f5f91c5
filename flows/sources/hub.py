"""The Hugging Face Hub (or any Hub-compatible server), through the real ``huggingface_hub`` client, always called
with an explicit ``endpoint``. Metadata (cards, indexes, safetensors headers by Range requests) is read before any
weight; shards are downloaded one at a time into a work folder and deleted after analysis.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from ..weights import (
    MODEL_CONFIG,
    PICKLE_INDEX,
    SAFETENSORS_INDEX,
    ModelConfig,
    ModelPlan,
    Shard,
    TensorInfo,
    UnsupportedWeights,
    WeightsError,
    gguf_plan,
    parse_adapter_config,
    parse_model_config,
    shards_from_index,
)
from ..weights.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from ..weights.plan import GGUF_SUFFIX
from .base import EvalResult, HubError, ModelDescription, ModelRef, _as_list, infer_family
from .cards import parse_card

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
# The Hub's newer evaluation results live in this folder of a repo (https://huggingface.co/docs/hub/eval-results).
EVAL_RESULTS_DIR = ".eval_results/"


def hub_endpoint(endpoint: str | None = None) -> str:
    """The one place that reads ``HF_ENDPOINT``: the argument, else the variable, else the public Hub."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def plan_from_headers(headers: dict[str, list[TensorInfo]], order: list[Shard] | None) -> ModelPlan:
    """A plan from per-file tensor lists, in index order when an index gave one."""
    if order:
        for shard in order:
            known = {t.name: t for t in headers.get(shard.filename, [])}
            shard.tensors = [known.get(t.name, t) for t in shard.tensors]
        return ModelPlan(order)
    return ModelPlan([Shard(name, tensors) for name, tensors in headers.items()])


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
        gguf_file: str | None = None,
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
        self.gguf_file = gguf_file  # which GGUF file of a GGUF-only repo to analyze (None: the one gguf_plan picks)
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
        config = self._model_config(pinned, files)
        plan = self._adapter_plan(pinned, files) if config.adapter_config is not None else self._plan(pinned, files)
        plan.config = config
        return ModelDescription(pinned, plan, status, facts, evals)

    def _model_config(self, ref: ModelRef, files: dict[str, int | None]) -> ModelConfig:
        """``config.json`` and ``adapter_config.json`` (small; cached like cards): what decoders read."""

        def text(name: str) -> str | None:
            return self._text(ref, name) if name in files else None

        return ModelConfig(
            parse_model_config(text(MODEL_CONFIG), f"{ref.repo_id}/{MODEL_CONFIG}"),
            parse_adapter_config(text(ADAPTER_CONFIG), f"{ref.repo_id}/{ADAPTER_CONFIG}"),
        )

    def _adapter_plan(self, ref: ModelRef, files: dict[str, int | None]) -> ModelPlan:
        """A PEFT adapter repo: its ``adapter_model.safetensors`` (header by Range requests) or ``.bin``."""
        safetensors, pickle = ADAPTER_WEIGHTS
        if safetensors in files:
            headers = self._file_headers(ref, [safetensors])
            return ModelPlan([Shard(safetensors, headers[safetensors], files.get(safetensors))])
        if pickle in files:
            if not self.allow_pickle:
                raise UnsupportedWeights(f"{ref.repo_id}: only a pickled adapter_model.bin, and --no-pickle was given")
            return ModelPlan([Shard(pickle, size=files.get(pickle))], fmt="pickle")
        raise WeightsError(f"{ref.repo_id}@{ref.revision}: {ADAPTER_CONFIG} but no {' or '.join(ADAPTER_WEIGHTS)}")

    @staticmethod
    def _gguf_only(files: dict[str, int | None]) -> bool:
        """No safetensors and no pickles, but GGUF files: analyze one of them (``gguf_plan`` says which)."""
        pickles = any(re.fullmatch(r"pytorch_model(-\d+-of-\d+)?\.bin", f) for f in files)
        return not pickles and any(f.endswith(GGUF_SUFFIX) for f in files)

    def _file_headers(self, ref: ModelRef, filenames: list[str]) -> dict[str, list[TensorInfo]]:
        """Each file's tensor list from its own safetensors header (Range requests), whatever the file's name."""
        headers = {}
        for filename in filenames:
            meta = self._call(
                f"{ref.repo_id}/{filename} safetensors header",
                lambda f=filename: self.api.parse_safetensors_file_metadata(ref.repo_id, f, revision=ref.revision),
            )
            headers[filename] = [TensorInfo(name, t.dtype, tuple(t.shape)) for name, t in meta.tensors.items()]
        return headers

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
        elif self._gguf_only(files):
            return gguf_plan({f: files[f] for f in files if f.endswith(GGUF_SUFFIX)}, self.gguf_file, ref.repo_id)
        else:
            return self._pickle_plan(ref, files)
        filenames = [s.filename for s in order]
        standard = SAFETENSORS_INDEX in files or "model.safetensors" in files
        headers = self._headers(ref, filenames) if standard else self._file_headers(ref, filenames)
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
