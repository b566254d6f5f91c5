"""A small Hugging Face Hub-compatible HTTP server for tests (stdlib only), on 127.0.0.1.

It serves repos that tests generate, with the routes and headers the real ``huggingface_hub`` client uses:

* ``GET /api/models`` (``author``, ``search``, ``filter``, ``sort``, ``limit``), paginated with an absolute
  ``Link: <url>; rel="next"`` header;
* ``GET /api/models/{org}/{name}/tree/{rev}`` (the file list ``snapshot_download`` asks for);
* ``GET /api/models/{org}/{name}[/revision/{rev}]``: ``id, sha, siblings, cardData, tags, ...``; 404 with
  ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound``; with ``expand=...`` only those properties, and
  ``evalResults`` (from the repo's ``.eval_results/*.yaml``) only when expanded, as the Hub does;
* ``HEAD``/``GET /{org}/{name}/resolve/{rev}/{path}``: ``X-Repo-Commit``, quoted ``ETag``, ``Content-Length``,
  ``Range`` → 206; missing file → 404 ``EntryNotFound``;
* datasets (``commit(..., repo_type="dataset")``): ``GET /api/datasets/{org}/{name}[/revision/{rev}]`` and
  ``/datasets/{org}/{name}/resolve/{rev}/{path}``, answered like the model routes.

Each repo keeps its commits, so an old sha stays downloadable after a new commit. Fault switches (``fail_5xx``,
``slow``, ``truncate``, ``ignore_range``, ``wrong_etag``) apply to requests whose path contains ``match``, for a
number of requests (bursts) or until cleared.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import yaml


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    created: float


@dataclass
class Fault:
    kind: str
    match: str | None
    remaining: int | None  # None: until cleared
    value: float = 0.0


@dataclass
class Repo:
    repo_id: str
    commits: list[Commit] = field(default_factory=list)
    hidden: bool = False
    downloads: int = 0
    likes: int = 0

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def commit_at(self, revision: str) -> Commit | None:
        if revision in ("main", "HEAD"):
            return self.head
        for commit in self.commits:
            if commit.sha == revision or (len(revision) >= 7 and commit.sha.startswith(revision)):
                return commit
        return None


def card_metadata(readme: bytes | None) -> dict | None:
    """YAML front matter of a README, or None when missing or malformed."""
    if not readme:
        return None
    match = re.match(rb"^---\s*\n(.*?)\n---\s*(\n|$)", readme, re.DOTALL)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


class FakeHub:
    def __init__(self, page_size: int = 2):
        self.repos: dict[str, Repo] = {}
        self.datasets: dict[str, Repo] = {}
        self.page_size = page_size
        self.requests: list[tuple[str, str, str | None]] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- repos -------------------------------------------------------------------------------------------------
    def commit(
        self, repo_id: str, files: dict[str, bytes | Path], replace: bool = False, repo_type: str = "model"
    ) -> str:
        """Add a commit with ``files`` (on top of the previous commit's files unless ``replace``). Returns the sha."""
        with self._lock:
            repos = self.datasets if repo_type == "dataset" else self.repos
            repo = repos.setdefault(repo_id, Repo(repo_id))
            content = {} if replace or not repo.commits else dict(repo.head.files)
            for name, data in files.items():
                content[name] = data.read_bytes() if isinstance(data, Path) else bytes(data)
            digest = hashlib.sha1(repo_id.encode())
            for name in sorted(content):
                digest.update(name.encode() + b"\0" + hashlib.sha1(content[name]).digest())
            digest.update(str(len(repo.commits)).encode())
            repo.commits.append(Commit(digest.hexdigest(), content, time.time()))
            return repo.head.sha

    def add_folder(self, repo_id: str, folder: Path) -> str:
        return self.commit(repo_id, {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()})

    def hide(self, repo_id: str) -> None:
        """Make a repo answer 404 RepoNotFound (gated or deleted)."""
        self.repos.setdefault(repo_id, Repo(repo_id)).hidden = True

    # ---- faults ------------------------------------------------------------------------------------------------
    def _add_fault(self, kind: str, match: str | None, count: int | None, value: float = 0.0) -> None:
        with self._lock:
            self.faults.append(Fault(kind, match, count, value))

    def fail_5xx(self, count: int = 1, match: str | None = None, status: int = 503) -> None:
        self._add_fault("5xx", match, count, status)

    def slow(self, seconds: float, match: str | None = None, count: int | None = None) -> None:
        self._add_fault("slow", match, count, seconds)

    def truncate(self, count: int = 1, match: str | None = None) -> None:
        self._add_fault("truncate", match, count)

    def ignore_range(self, match: str | None = None, count: int | None = None) -> None:
        self._add_fault("ignore_range", match, count)

    def wrong_etag(self, match: str | None = None, count: int | None = None) -> None:
        self._add_fault("wrong_etag", match, count)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, kind: str, path: str, method: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.kind != kind or (fault.match and fault.match not in path):
                    continue
                if kind in ("truncate", "ignore_range") and method != "GET":
                    continue
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        continue
                    fault.remaining -= 1
                return fault
        return None

    # ---- server ------------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() the hub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def count(self, method: str, substring: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and substring in p)

    # ---- API payloads ------------------------------------------------------------------------------------------
    def model_payload(self, repo: Repo, commit: Commit) -> dict:
        card = card_metadata(commit.files.get("README.md"))
        tags = list((card or {}).get("tags") or [])
        base = (card or {}).get("base_model")
        for b in [base] if isinstance(base, str) else base or []:
            tags.append(f"base_model:{b}")
        library = (card or {}).get("library_name")
        if library:
            tags.append(library)
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "tags": tags,
            "pipeline_tag": (card or {}).get("pipeline_tag"),
            "library_name": library,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created)),
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(repo.commits[0].created)),
            "cardData": card,
            "siblings": [
                {"rfilename": name, "size": len(data), "blobId": hashlib.sha1(data).hexdigest()}
                for name, data in sorted(commit.files.items())
            ],
        }


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, payload, headers: dict | None = None) -> None:
        self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str, extra: dict | None = None, head: bool = False) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(
            status,
            body,
            {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message, **(extra or {})},
            head=head,
        )

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        parsed = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parsed.path)
        hub.requests.append((method, path, self.headers.get("Range")))
        slow = hub._take_fault("slow", path, method)
        if slow:
            time.sleep(slow.value)
        failure = hub._take_fault("5xx", path, method)
        if failure:
            self._error(int(failure.value), "ServerError", "injected failure", head=method == "HEAD")
            return
        query = urllib.parse.parse_qs(parsed.query)
        if path == "/api/models":
            self._list_models(query)
            return
        match = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if match:
            self._model_info(match.group(1), match.group(2) or "main", [], "dataset")
            return
        match = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            self._resolve(method, match.group(1), urllib.parse.unquote(match.group(2)), match.group(3), path, "dataset")
            return
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/.*)?", path)
        if match:
            self._tree(match.group(1), urllib.parse.unquote(match.group(2)))
            return
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if match:
            self._model_info(match.group(1), match.group(2) or "main", query.get("expand") or [])
            return
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            self._resolve(method, match.group(1), urllib.parse.unquote(match.group(2)), match.group(3), path)
            return
        self._error(404, "NotFound", f"no route for {path}", head=method == "HEAD")

    def _visible(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        repo = (self.hub.datasets if repo_type == "dataset" else self.hub.repos).get(repo_id)
        return None if repo is None or repo.hidden or not repo.commits else repo

    def _list_models(self, query: dict) -> None:
        hub = self.hub
        author = (query.get("author") or [None])[0]
        search = ((query.get("search") or [""])[0]).lower()
        filters = query.get("filter") or []
        limit = int((query.get("limit") or [0])[0] or 0)
        offset = int((query.get("offset") or [0])[0] or 0)
        models = []
        for repo_id in sorted(hub.repos):
            repo = self._visible(repo_id)
            if repo is None:
                continue
            payload = hub.model_payload(repo, repo.head)
            if author and payload["author"] != author:
                continue
            if search and search not in repo_id.lower():
                continue
            if filters and not set(filters) <= set(payload["tags"]):
                continue
            models.append(payload)
        sort = (query.get("sort") or [None])[0]
        if sort in ("downloads", "likes"):
            models.sort(key=lambda m: m[sort], reverse=True)
        if limit:
            models = models[:limit]
        page = models[offset : offset + hub.page_size]
        headers = {}
        if offset + hub.page_size < len(models):
            params = {k: v for k, v in query.items() if k != "offset"}
            params["offset"] = [str(offset + hub.page_size)]
            url = f"{hub.endpoint}/api/models?{urllib.parse.urlencode(params, doseq=True)}"
            headers["Link"] = f'<{url}>; rel="next"'
        self._json(
            [
                {
                    k: m[k]
                    for k in (
                        "_id",
                        "id",
                        "modelId",
                        "sha",
                        "tags",
                        "downloads",
                        "likes",
                        "pipeline_tag",
                        "library_name",
                        "lastModified",
                        "private",
                    )
                }
                for m in page
            ],
            headers,
        )

    def _model_info(self, repo_id: str, revision: str, expand: list[str], repo_type: str = "model") -> None:
        repo = self._visible(repo_id, repo_type)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return
        commit = repo.commit_at(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        payload = self.hub.model_payload(repo, commit)
        if expand:
            # Like the Hub: only the expanded properties (plus the ids), and evalResults only when expanded.
            payload = {k: v for k, v in payload.items() if k in ("_id", "id") or k in expand}
            if "evalResults" in expand:
                payload["evalResults"] = eval_results_payload(commit.files)
        self._json(payload)

    def _tree(self, repo_id: str, revision: str) -> None:
        repo = self._visible(repo_id)
        commit = repo.commit_at(revision) if repo else None
        if commit is None:
            self._error(404, "RepoNotFound" if repo is None else "RevisionNotFound", f"{repo_id}@{revision}")
            return
        self._json(
            [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for name, data in sorted(commit.files.items())
            ]
        )

    def _resolve(
        self, method: str, repo_id: str, revision: str, filename: str, path: str, repo_type: str = "model"
    ) -> None:
        head = method == "HEAD"
        repo = self._visible(repo_id, repo_type)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head=head)
            return
        commit = repo.commit_at(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
            return
        data = commit.files.get(filename)
        if data is None:
            self._error(
                404,
                "EntryNotFound",
                f"{filename} does not exist at {revision}",
                {"X-Repo-Commit": commit.sha},
                head=head,
            )
            return
        etag = hashlib.sha256(data).hexdigest()
        if self.hub._take_fault("wrong_etag", path, method):
            etag = "0" * 64
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        status, body = 200, data
        byte_range = self.headers.get("Range")
        if byte_range and not (method == "GET" and self.hub._take_fault("ignore_range", path, method)):
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", byte_range.strip())
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                if start >= len(data):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head=head)
                    return
                status, body = 206, data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        headers["Content-Length"] = str(len(body))
        if method == "GET" and self.hub._take_fault("truncate", path, method):
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(status, body, headers, head=head)


def eval_results_payload(files: dict[str, bytes]) -> list[dict]:
    """``evalResults`` as the Hub's API returns them: one item per entry of each ``.eval_results/*.yaml`` file, or
    an ``error`` item for a file that does not parse."""
    items = []
    for name, data in sorted(files.items()):
        if not (name.startswith(".eval_results/") and name.endswith((".yaml", ".yml"))):
            continue
        try:
            entries = yaml.safe_load(data)
            if not isinstance(entries, list):
                raise ValueError("expected a list of results")
        except (yaml.YAMLError, ValueError) as err:
            items.append({"filename": name, "error": str(err)})
            continue
        items += [{"filename": name, "data": entry} for entry in entries]
    return items


def write_model(
    folder: Path,
    tensors: dict[str, np.ndarray],
    shards: int = 1,
    dtype: str = "float32",
    card: dict | None = None,
    card_text: str | None = None,
) -> Path:
    """Write a model folder: ``model.safetensors`` or ``model-0000k-of-0000n.safetensors`` + index, and README.md.

    ``dtype`` float32 | float16 | bfloat16 (written through torch). ``card`` becomes YAML front matter;
    ``card_text`` is written verbatim (for malformed cards).
    """
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    names = list(tensors)
    converted = {n: torch.from_numpy(np.ascontiguousarray(tensors[n])).to(torch_dtype) for n in names}
    if shards == 1:
        save_file(converted, str(folder / "model.safetensors"))
    else:
        groups = [list(g) for g in np.array_split(np.array(names, dtype=object), shards)]
        weight_map = {}
        for k, group in enumerate(groups, start=1):
            filename = f"model-{k:05d}-of-{shards:05d}.safetensors"
            save_file({n: converted[n] for n in group}, str(folder / filename))
            weight_map.update({n: filename for n in group})
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in converted.values())},
            "weight_map": weight_map,
        }
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    if card_text is not None:
        (folder / "README.md").write_text(card_text)
    elif card is not None:
        (folder / "README.md").write_text(f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n\n# Model card\n")
    return folder


def model_index(name: str, accuracy: float, dataset: str = "digits", metric: str = "accuracy") -> list[dict]:
    """A card's ``model-index`` with one result, as the Hub's eval widget reads it."""
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": "image-classification", "name": "Image Classification"},
                    "dataset": {"name": dataset, "type": dataset, "split": "test"},
                    "metrics": [{"type": metric, "value": accuracy, "name": metric}],
                }
            ],
        }
    ]
