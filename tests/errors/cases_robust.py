"""Usage, input files, output paths, sources, the hub and local services (issue #9, branch robust)."""

from __future__ import annotations

import json
import socket
import struct

import numpy as np

from flows.lake.sql import run_query
from tests.errors.framework import ROOT, Ctx, ErrorCase
from tests.fakehub import model_index, write_model


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def families_file(ctx: Ctx, text: str) -> list[str]:
    (ctx.root / "families.yaml").write_text(text)
    return ["scan", "--families", "families.yaml", "--lake", str(ctx.lake)]


def hub_model(ctx: Ctx, repo_id: str, files: dict[str, bytes] | None = None) -> str:
    """A small model on the fake hub (a float layer and a card), with ``files`` (name → bytes) added or replaced."""
    folder = write_model(
        ctx.root / "src" / repo_id,
        {"w.weight": np.random.default_rng(1).standard_t(3, (60, 30)).astype(np.float32)},
        card={"model-index": model_index(repo_id, 0.7)},
    )
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
    return ctx.hub.add_folder(repo_id, folder)


def scan_hub(ctx: Ctx, *repos: str) -> list[str]:
    return ["scan", *repos, "--endpoint", ctx.hub.endpoint, "--lake", str(ctx.lake), "--hub-backoff", "0"]


def models_row(ctx: Ctx, repo_id: str) -> dict:
    return run_query(ctx.lake, "SELECT * FROM models WHERE repo_id = ?", parameters=[repo_id])[0]


def newest_record(ctx: Ctx, repo_id: str) -> dict:
    """The repo's newest record: its models row, or the attempt of a scan that could not scan it (hub errors)."""
    sql = (
        "SELECT status, reason FROM (SELECT status, reason, attempted_at AS happened FROM attempts WHERE repo_id = $1 "
        "UNION ALL SELECT status, reason, scanned_at FROM models WHERE repo_id = $1) ORDER BY happened DESC LIMIT 1"
    )
    return run_query(ctx.lake, sql, parameters=[repo_id])[0]


def _row_has(read_row, repo_id: str, status: str, words: tuple[str, ...]):
    def check(ctx: Ctx) -> None:
        row = read_row(ctx, repo_id)
        assert row["status"] == status, row
        for word in words:
            assert word in row["reason"], row["reason"]

    return check


def status_is(repo_id: str, status: str, *words: str):
    """The repo's newest record (a models row or an attempt) has ``status`` and a reason with ``words``."""
    return _row_has(newest_record, repo_id, status, words)


def scanned_as(repo_id: str, status: str, *words: str):
    """The repo's models row has ``status`` (a scan of its commit, which later scans skip), not only an attempt."""
    return _row_has(models_row, repo_id, status, words)


def safetensors_bytes(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _bug(*args, **kwargs):
    raise ZeroDivisionError("division by zero")


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def evil_pickle() -> bytes:
    """A torch checkpoint whose unpickling would run a shell command (it must never be unpickled)."""
    import io
    import os

    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch wwhub-pwned",))

    buffer = io.BytesIO()
    torch.save({"w.weight": Evil()}, buffer)
    return buffer.getvalue()


def _no_pwned(ctx: Ctx) -> None:
    assert not (ctx.root / "wwhub-pwned").exists()
    status_is("acme/evil", "failed", "would call")(ctx)
    assert "weights_only=False" not in models_row(ctx, "acme/evil")["reason"]


def _nothing_outside(ctx: Ctx) -> None:
    status_is("acme/liar", "failed", "invalid commit sha")(ctx)
    assert not list(ctx.root.parent.rglob("x.parquet"))


CASES = [
    # ---- the command line ------------------------------------------------------------------------------------------
    ErrorCase(
        "unknown-command",
        "a command that does not exist",
        2,
        "wwhub: error: argument COMMAND: invalid choice: 'scna' (choose from <commands>) (usage: wwhub --help)",
        lambda ctx: ["scna"],
    ),
    ErrorCase(
        "bad-option-value",
        "an option value of the wrong kind (`--max-evals abc`)",
        2,
        "wwhub analyze: error: argument --max-evals: expected a whole number or 'none', got 'abc' "
        "(usage: wwhub analyze --help)",
        lambda ctx: ["analyze", "model.safetensors", "--max-evals", "abc"],
    ),
    ErrorCase(
        "scan-workers-0",
        "`wwhub scan --source local ROOT --workers 0` (any option value argparse refuses: one line, no usage dump)",
        2,
        "wwhub scan: error: argument --workers: expected a whole number of at least 1, got '0' "
        "(usage: wwhub scan --help)",
        lambda ctx: ["scan", "--source", "local", "repos", "--workers", "0"],
    ),
    ErrorCase(
        "analysis-options-conflict",
        "analysis options that contradict each other",
        2,
        "wwhub analyze: error: --fit 'TPL' cannot be combined with --fix-fingers 'clip_xmax'",
        lambda ctx: ["analyze", "x.safetensors", "--fit", "TPL", "--fix-fingers", "clip_xmax"],
    ),
    ErrorCase(
        "internal-error",
        "a bug in wwhub (an unexpected exception)",
        70,
        "wwhub analyze: internal error: ZeroDivisionError: division by zero (this is a bug in wwhub: rerun with "
        "--debug and report the traceback in the wwhub issue tracker)",
        lambda ctx: (ctx.monkeypatch.setattr("flows.cli.analyze.plan_path", _bug), ["analyze", "m.safetensors"])[1],
    ),
    ErrorCase(
        "interrupted",
        "Ctrl-C (SIGINT) during a command",
        130,
        "wwhub scan: interrupted; what completed is kept",
        lambda ctx: (
            ctx.monkeypatch.setattr("flows.cli.scan.run_scan", _interrupt),
            ["scan", "--source", "local", str(ctx.root), "--lake", str(ctx.lake)],
        )[1],
    ),
    # ---- output paths ----------------------------------------------------------------------------------------------
    ErrorCase(
        "out-missing-folder",
        "`--out` into a folder that does not exist (analyze, leaderboard, query)",
        2,
        "wwhub analyze: error: --out nope/layers.csv: folder nope does not exist (create it first, or fix the path)",
        lambda ctx: ["analyze", "m.safetensors", "--format", "csv", "--out", "nope/layers.csv"],
    ),
    ErrorCase(
        "out-is-a-folder",
        "`--out` naming a folder where a file is expected",
        2,
        "wwhub leaderboard: error: --out lake: is a folder; give a file name in it, e.g. lake/out.txt",
        lambda ctx: ["leaderboard", "--lake", str(ctx.lake), "--out", "lake"],
    ),
    ErrorCase(
        "query-out-missing-folder",
        "`wwhub query --out` into a missing folder",
        2,
        "wwhub query: error: --out nope/x.csv: folder nope does not exist (create it first, or fix the path)",
        lambda ctx: ["query", "SELECT 1", "--lake", str(ctx.lake), "--out", "nope/x.csv"],
    ),
    ErrorCase(
        "demo-out-is-a-file",
        "`wwhub demo --out` naming a file where a folder is expected",
        2,
        "wwhub demo: error: --out notes.txt: is a file, expected a folder",
        lambda ctx: ((ctx.root / "notes.txt").write_text("mine"), ["demo", "--out", "notes.txt"])[1],
    ),
    # ---- families.yaml -------------------------------------------------------------------------------------------
    ErrorCase(
        "families-repos-string",
        "families.yaml: `repos:` given as a string",
        2,
        "  families.yaml:2: family 'mine': repos: expected a list, e.g. [org/a, org/b] (got 'org/a')",
        lambda ctx: families_file(ctx, "families:\n  mine: {repos: org/a}\n"),
        lines=2,  # the count of problems, then one line each
    ),
    ErrorCase(
        "families-repo-slash",
        "families.yaml: a repo `/` (or any id that is not org/name)",
        2,
        "  families.yaml:3: family 'mine': repos[0]: repo '/' is not a Hub repo id: expected org/name "
        "(letters, digits, '-', '_', '.')",
        lambda ctx: families_file(ctx, "families:\n  mine:\n    repos: ['/']\n"),
        lines=2,  # the count of problems, then one line each
    ),
    ErrorCase(
        "families-limit-many",
        "families.yaml: `limit: many`",
        2,
        "  families.yaml:4: family 'pythia': limit: expected a whole number (got 'many')",
        lambda ctx: families_file(ctx, "families:\n  pythia:\n    search: pythia\n    limit: many\n"),
        lines=2,  # the count of problems, then one line each
    ),
    ErrorCase(
        "families-limit-negative",
        "families.yaml: `limit: -1` (or 0)",
        2,
        "  families.yaml:2: family 'pythia': limit: must be at least 1 (got -1)",
        lambda ctx: families_file(ctx, "families:\n  pythia: {search: pythia, limit: -1}\n"),
        lines=2,  # the count of problems, then one line each
    ),
    ErrorCase(
        "families-search-number",
        "families.yaml: `search: 123`",
        2,
        "  families.yaml:2: family 'x': search: expected text (got 123)",
        lambda ctx: families_file(ctx, "families:\n  x: {search: 123}\n"),
        lines=2,  # the count of problems, then one line each
    ),
    ErrorCase(
        "families-sort-bogus",
        "families.yaml: `sort: bogus`",
        2,
        "  families.yaml:2: family 'x': sort: expected one of created_at, downloads, last_modified, likes, "
        "trending_score (got 'bogus')",
        lambda ctx: families_file(ctx, "families:\n  x: {author: acme, sort: bogus}\n"),
        lines=2,  # the count of problems, then one line each
    ),
    ErrorCase(
        "families-unknown-key",
        "families.yaml: an unknown key (a typo)",
        2,
        "  families.yaml:3: family 'x': unknown key 'autor' (known: repos, author, search, filter, sort, limit)",
        lambda ctx: families_file(ctx, "families:\n  x:\n    autor: acme\n"),
        lines=2,  # the count of problems, then one line each
    ),
    ErrorCase(
        "families-no-selector",
        "families.yaml: a family with only sort/limit (it would list the whole Hub)",
        2,
        "  families.yaml:2: family 'x': choose models with one of repos, author, search, filter (sort and limit "
        "alone would list the whole Hub)",
        lambda ctx: families_file(ctx, "families:\n  x: {limit: 3}\n"),
        lines=2,  # the count of problems, then one line each
    ),
    ErrorCase(
        "families-tab",
        "families.yaml: a tab in the indentation",
        2,
        "wwhub scan: error: families.yaml:3:1: not valid YAML: found character '\\t' that cannot start any token",
        lambda ctx: families_file(ctx, "families:\n  x:\n\tsearch: a\n"),
        lines=2,  # the YAML error, then how to fix it
    ),
    ErrorCase(
        "families-indentation",
        "families.yaml: inconsistent indentation",
        2,
        "wwhub scan: error: families.yaml:4:4: not valid YAML: expected <block end>, but found '<block mapping start>'",
        lambda ctx: families_file(ctx, "families:\n  x:\n    search: a\n   limit: 3\n"),
        lines=2,  # the YAML error, then how to fix it
    ),
    ErrorCase(
        "families-missing-file",
        "`--families` naming a file that does not exist",
        2,
        "wwhub scan: error: nope.yaml: no such file",
        lambda ctx: ["scan", "--families", "nope.yaml"],
    ),
    # ---- what to scan --------------------------------------------------------------------------------------------
    ErrorCase(
        "repo-id-space",
        "a repo id with a space",
        2,
        "wwhub scan: error: REPO_ID 'org/my model': repo 'org/my model' is not a Hub repo id: expected org/name "
        "(letters, digits, '-', '_', '.')",
        lambda ctx: ["scan", "org/my model", "--lake", str(ctx.lake)],
    ),
    ErrorCase(
        "repo-and-limit",
        "repo ids combined with a query option (`--limit`)",
        2,
        "wwhub scan: error: REPO_ID names the models itself: drop --limit, or drop REPO_ID",
        lambda ctx: ["scan", "org/a", "--limit", "3"],
    ),
    ErrorCase(
        "limit-0-local",
        "`--limit 0` (for a local folder it used to mean no limit)",
        2,
        "wwhub scan: error: --limit 0: must be at least 1",
        lambda ctx: ["scan", "--source", "local", str(ctx.root), "--limit", "0", "--lake", str(ctx.lake)],
    ),
    ErrorCase(
        "local-no-repos",
        "a local source with no model folders",
        2,
        "wwhub scan: error: nothing to scan: the local source <dir> has no model folders for everything (expected "
        "DIR/ORG/NAME folders with weights)",
        lambda ctx: ((ctx.root / "empty").mkdir(), ["scan", "--source", "local", "empty", "--lake", str(ctx.lake)])[1],
    ),
    ErrorCase(
        "local-not-a-folder",
        "`--source local DIR` where DIR is not a folder",
        2,
        "wwhub scan: error: --source local nope: not a folder (expected DIR/ORG/NAME model folders)",
        lambda ctx: ["scan", "--source", "local", "nope", "--lake", str(ctx.lake)],
    ),
    ErrorCase(
        "cache-dir-typo",
        "`--source cache DIR` with a mistyped DIR (it used to become a repo id)",
        2,
        "wwhub scan: error: --source cache ./hf-cahce: not a folder (give the HF cache folder, or none for the "
        "default)",
        lambda ctx: ["scan", "--source", "cache", "./hf-cahce", "--lake", str(ctx.lake)],
    ),
    ErrorCase(
        "lake-is-a-file",
        "`--lake` naming a file",
        2,
        "wwhub scan: error: --lake <path>: is a file, expected the lake folder",
        lambda ctx: ((ctx.root / "lake.txt").write_text("x"), ["scan", "--source", "local", ".", "--lake", "lake.txt"])[
            1
        ],
    ),
    ErrorCase(
        "endpoint-not-a-url",
        "`--endpoint` without `http://`",
        2,
        "wwhub scan: error: --endpoint 'localhost:8080' is not a URL: expected http://HOST[:PORT] or https://HOST",
        lambda ctx: ["scan", "org/a", "--endpoint", "localhost:8080", "--lake", str(ctx.lake)],
    ),
    ErrorCase(
        "hf-endpoint-not-a-url",
        "`HF_ENDPOINT` without `http://`",
        2,
        "wwhub scan: error: HF_ENDPOINT 'mirror:8080' is not a URL: expected http://HOST[:PORT] or https://HOST",
        lambda ctx: (ctx.monkeypatch.setenv("HF_ENDPOINT", "mirror:8080"), ["scan", "org/a", "--lake", "lake"])[1],
    ),
    ErrorCase(
        "hub-retries-negative",
        "`--hub-retries -1`",
        2,
        "wwhub scan: error: --hub-retries -1: expected a whole number from 0 to 20",
        lambda ctx: ["scan", "org/a", "--hub-retries", "-1"],
    ),
    ErrorCase(
        "hub-timeout-variable",
        "`WWHUB_HUB_TIMEOUT` that is not a number",
        2,
        "wwhub scan: error: WWHUB_HUB_TIMEOUT='soon': expected a number",
        lambda ctx: (ctx.monkeypatch.setenv("WWHUB_HUB_TIMEOUT", "soon"), ["scan", "org/a"])[1],
    ),
    # ---- the hub -------------------------------------------------------------------------------------------------
    ErrorCase(
        "hub-unreachable",
        "an unreachable hub endpoint (reported after the bounded retries, within 30 s)",
        2,
        "wwhub scan: error: hub http://127.0.0.1:<port>: hub unavailable: ConnectError: <why> (2 attempts, GET "
        "<url>) (check --endpoint or HF_ENDPOINT, and the network)",
        lambda ctx: ["scan", "org/a", "--endpoint", f"http://127.0.0.1:{closed_port()}", "--hub-retries", "1"],
    ),
    ErrorCase(
        "hub-stalled",
        "a hub that accepts connections and never answers (read timeout)",
        2,
        "wwhub scan: error: hub <url>: hub unavailable: ReadTimeout: <why> (1 attempt, GET <url>) (check "
        "--endpoint or HF_ENDPOINT, and the network)",
        lambda ctx: (
            ctx.hub.stall(match="/api/models"),
            ["scan", "org/a", "--endpoint", ctx.hub.endpoint, "--hub-timeout", "0.5", "--hub-retries", "0"],
        )[1],
    ),
    ErrorCase(
        "hub-5xx-no-retries",
        "a hub answering 503 with `--hub-retries 0` (transient, as a timeout is: an `unavailable` attempt, scanned by "
        "the next scan, never a failed model)",
        1,
        "wwhub scan: unavailable: acme/down@<sha>: hub unavailable: HTTP 503 (1 attempt, GET <url>)",
        lambda ctx: (
            hub_model(ctx, "acme/down"),
            ctx.hub.fail_5xx(count=None, match="/api/models/acme/down"),
            [*scan_hub(ctx, "acme/down"), "--hub-retries", "0"],
        )[-1],
        changes="lake",
        check=status_is("acme/down", "unavailable", "HTTP 503"),
    ),
    ErrorCase(
        "repo-missing",
        "every repo asked for is missing (a typo); the failure is recorded",
        2,
        "wwhub scan: failed: acme/nope@main: repository not found (check the id; a private repo needs HF_TOKEN)",
        lambda ctx: (hub_model(ctx, "acme/real"), scan_hub(ctx, "acme/nope"))[1],
        changes="lake",
        check=status_is("acme/nope", "failed", "not found"),
    ),
    ErrorCase(
        "repo-gated",
        "a gated repo without `HF_TOKEN` (status `gated`, the other models are scanned)",
        1,
        "wwhub scan: gated: acme/gated@<sha> safetensors headers: gated repository: accept its license on the Hub, "
        "then set HF_TOKEN to a token of an account with access",
        lambda ctx: (
            hub_model(ctx, "acme/gated"),
            ctx.hub.gate("acme/gated", "hf_allowed"),
            hub_model(ctx, "acme/open"),
            scan_hub(ctx, "acme/gated", "acme/open"),
        )[-1],
        changes="lake",
        check=status_is("acme/gated", "gated", "HF_TOKEN"),
    ),
    ErrorCase(
        "hostile-sha",
        "a hub answering a commit sha like `../../../tmp/x` (nothing is written outside the lake)",
        1,
        "wwhub scan: failed: acme/liar@main: the hub answered an invalid commit sha '../../../tmp/x'",
        lambda ctx: (
            hub_model(ctx, "acme/liar"),
            ctx.hub.lie_about_sha("acme/liar", "../../../tmp/x"),
            scan_hub(ctx, "acme/liar"),
        )[-1],
        changes="lake",
        check=_nothing_outside,
    ),
    ErrorCase(
        "weight-map-escape",
        "an index whose `weight_map` names `../../x.safetensors` or an absolute path",
        1,
        "wwhub scan: failed: acme/escape@<sha>/model.safetensors.index.json: weight_map names '../../x.safetensors', "
        "not a file inside the model folder",
        lambda ctx: (
            hub_model(
                ctx,
                "acme/escape",
                {
                    "model.safetensors.index.json": json.dumps(
                        {"weight_map": {"w.weight": "../../x.safetensors"}}
                    ).encode()
                },
            ),
            scan_hub(ctx, "acme/escape"),
        )[-1],
        changes="lake",
        check=status_is("acme/escape", "failed", "weight_map"),
    ),
    ErrorCase(
        "header-length-huge",
        "a safetensors header length of 2⁴⁰ (refused before anything is allocated; the commit's file is corrupt: a "
        "failed scan, not tried again until a new commit)",
        1,
        "wwhub scan: failed: acme/huge@<sha>/model.safetensors: corrupt safetensors header: its header length of "
        "1099511627776 bytes runs past the end of the 10-byte file",
        lambda ctx: (
            hub_model(ctx, "acme/huge", {"model.safetensors": safetensors_bytes({}, length=2**40)}),
            scan_hub(ctx, "acme/huge"),
        )[-1],
        changes="lake",
        check=scanned_as("acme/huge", "failed", "runs past the end"),
    ),
    ErrorCase(
        "header-not-json",
        "a safetensors header that is not JSON (the commit's file: a failed scan, not tried again until a new commit; "
        "a read cut short is an `unavailable` attempt instead)",
        1,
        "wwhub scan: failed: acme/garbled@<sha>/model.safetensors: corrupt safetensors header: not JSON (Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1))",
        lambda ctx: (
            hub_model(ctx, "acme/garbled", {"model.safetensors": struct.pack("<Q", 4) + b"{{{{"}),
            scan_hub(ctx, "acme/garbled"),
        )[-1],
        changes="lake",
        check=scanned_as("acme/garbled", "failed", "not JSON"),
    ),
    ErrorCase(
        "header-wrong-shape",
        "a safetensors header that is JSON, but not of the format's shape (a list, a tensor entry without its dtype, "
        "tensors whose bytes overlap or run past the file): the commit's file, a failed scan",
        1,
        "wwhub scan: failed: acme/shapeless@<sha>/model.safetensors: corrupt safetensors header: tensor 'w.weight' "
        "has no dtype",
        lambda ctx: (
            hub_model(
                ctx,
                "acme/shapeless",
                {"model.safetensors": safetensors_bytes({"w.weight": {"shape": [2, 2], "data_offsets": [0, 16]}})},
            ),
            scan_hub(ctx, "acme/shapeless"),
        )[-1],
        changes="lake",
        check=scanned_as("acme/shapeless", "failed", "no dtype"),
    ),
    ErrorCase(
        "config-too-large",
        "a `config.json` over 4 MB, or an index over 32 MB (not read: the commit's file, a failed scan, not tried "
        "again until a new commit)",
        1,
        "wwhub scan: failed: acme/bloated@<sha>/config.json: 4000001 bytes, more than the 4000000 this file may have",
        lambda ctx: (
            hub_model(ctx, "acme/bloated", {"config.json": b"{" + b" " * 3_999_999 + b"}"}),
            scan_hub(ctx, "acme/bloated"),
        )[-1],
        changes="lake",
        check=scanned_as("acme/bloated", "failed", "config.json"),
    ),
    ErrorCase(
        "header-shape-huge",
        "a safetensors header whose shape claims 10¹² elements",
        1,
        "wwhub scan: failed: acme/claim@<sha>/model.safetensors: corrupt safetensors header: tensor 'w.weight' of "
        "shape [1000000, 1000000] (F32) needs 4000000000000 bytes, but its data offsets hold 16",
        lambda ctx: (
            hub_model(
                ctx,
                "acme/claim",
                {
                    "model.safetensors": safetensors_bytes(
                        {"w.weight": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]}}, bytes(16)
                    )
                },
            ),
            scan_hub(ctx, "acme/claim"),
        )[-1],
        changes="lake",
        check=scanned_as("acme/claim", "failed", "corrupt safetensors header", "needs 4000000000000 bytes"),
    ),
    ErrorCase(
        "pickle-runs-code",
        "a `pytorch_model.bin` whose unpickling would run code (it is never unpickled)",
        1,
        "wwhub scan: failed: acme/evil@<sha>: shard pytorch_model.bin: <path>: cannot load the pickle safely with "
        "weights_only=True (it would call <global>, which is not part of a state dict; such a file is never loaded)",
        lambda ctx: (
            ctx.hub.add_folder("acme/evil", _pickle_folder(ctx)),
            scan_hub(ctx, "acme/evil"),
        )[-1],
        changes="lake",
        check=_no_pwned,
    ),
    # ---- local services ------------------------------------------------------------------------------------------
    ErrorCase(
        "serve-no-server",
        "`wwhub serve` with PREFECT_API_URL set and no server there (within 10 s)",
        2,
        "wwhub serve: error: no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:<port>/api (ConnectError): "
        "start one with `prefect server start`, or fix PREFECT_API_URL",
        lambda ctx: _serve_without_server(ctx),
    ),
    ErrorCase(
        "dask-no-scheduler",
        "`--task-runner dask --dask-address` with no scheduler there (within 10 s)",
        2,
        "wwhub scan: error: --dask-address tcp://127.0.0.1:<port>: no Dask scheduler answers (Connection refused); "
        "start one (`dask scheduler`) or fix the address",
        lambda ctx: [
            "scan",
            "--source",
            "local",
            str(ctx.root),
            "--lake",
            str(ctx.lake),
            "--task-runner",
            "dask",
            "--dask-address",
            f"tcp://127.0.0.1:{closed_port()}",
        ],
    ),
]


def _pickle_folder(ctx: Ctx):
    folder = ctx.root / "src" / "evil"
    folder.mkdir(parents=True)
    (folder / "pytorch_model.bin").write_bytes(evil_pickle())
    return folder


def _serve_without_server(ctx: Ctx) -> list[str]:
    url = f"http://127.0.0.1:{closed_port()}/api"
    ctx.monkeypatch.setattr(
        "prefect.settings.PREFECT_API_URL", type("Setting", (), {"value": staticmethod(lambda: url)})()
    )
    (ctx.root / "families.yaml").write_text("families:\n  x: {author: acme}\n")
    return ["serve", "--prefect-yaml", str(ROOT / "prefect.yaml")]
