"""Local sources: a folder of repos (``ROOT/org/name``) and the local Hugging Face cache. No network."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..weights import Shard, plan_local
from .base import HUB_INVALID, HUB_NOT_FOUND, HubError, ModelDescription, ModelRef, _as_list, infer_family
from .cards import card_data, parse_card


class LocalSource:
    """A folder of repos, ``ROOT/org/name/`` with ``README.md`` and weights: the demo and air-gapped scans.

    A local repo has no commit; its revision is a fingerprint (sha1 of file names, sizes and modification times),
    so an edited folder is scanned again and an untouched one is skipped.
    """

    kind = "local"
    deletes_shards = False

    def __init__(self, root: str | os.PathLike, gguf_file: str | None = None, allow_pickle: bool = True):
        self.root = Path(root)
        self.gguf_file = gguf_file
        self.allow_pickle = allow_pickle
        if not self.root.is_dir():
            raise HubError(f"local source {self.root} is not a folder")

    def _repo_dir(self, repo_id: str) -> Path:
        """ROOT/org/name; a repo id that would lead elsewhere (``/``, ``..``) is refused before any file is read."""
        # normpath, not resolve(): a repo folder may be a symlink (e.g. into the HF cache), and that is fine.
        folder = Path(os.path.normpath(self.root / repo_id))
        if not repo_id or Path(os.path.normpath(self.root)) not in folder.parents:
            raise HubError(f"repo {repo_id!r}: not a folder inside the local source {self.root}", HUB_INVALID)
        return folder

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
        text = readme.read_text() if readme.exists() else None
        status, facts, _ = parse_card(text)
        tags = []
        if status == "ok":
            tags = list(getattr(card_data(text), "tags", None) or [])
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
            raise HubError(f"{ref.repo_id}: not found in the {self.kind} source", HUB_NOT_FOUND)
        return ref

    def describe(self, ref: ModelRef) -> ModelDescription:
        folder = self._repo_dir(ref.repo_id)
        if not folder.is_dir():
            raise HubError(f"{ref.repo_id}: no folder {folder} in the local source", HUB_NOT_FOUND)
        _, plan = plan_local(folder, self.gguf_file, self.allow_pickle)
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

    def __init__(
        self, cache_dir: str | os.PathLike | None = None, gguf_file: str | None = None, allow_pickle: bool = True
    ):
        from huggingface_hub import scan_cache_dir

        self.gguf_file = gguf_file
        self.allow_pickle = allow_pickle
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
            raise HubError(f"{ref.repo_id}@{ref.revision} is not in the Hugging Face cache", HUB_NOT_FOUND) from None

    def describe(self, ref: ModelRef) -> ModelDescription:
        folder = self._snapshot(ref)
        _, plan = plan_local(folder, self.gguf_file, self.allow_pickle)
        readme = folder / "README.md"
        status, facts, evals = parse_card(readme.read_text(errors="replace") if readme.exists() else None)
        return ModelDescription(ref, plan, status, facts, evals)

    def fetch_shard(self, ref: ModelRef, shard: Shard, workdir: Path) -> Path:
        return self._snapshot(ref) / shard.filename
