"""The scan pipeline against the fake hub with the real huggingface_hub client: lake contents, failures,
reruns, and agreement with `wwhub analyze` on the same files."""

import json

import numpy as np
import pytest

from flows.cli import main
from tests.fakehub import model_index, write_model
from tests.flows.scanning.helpers import lake_rows, scan


def tensors(seed: int, width: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "embed.weight": rng.standard_t(4, (300, width)).astype(np.float32),
        "block.0.attn.weight": rng.standard_t(3, (width, width)).astype(np.float32),
        "block.0.attn.bias": np.zeros(width, np.float32),
        "block.0.mlp.weight": rng.standard_t(5, (4 * width, width)).astype(np.float32),
        "head.weight": rng.standard_t(3, (10, width)).astype(np.float32),
    }


@pytest.fixture
def family(fake_hub, tmp_path):
    """acme/tiny-{1,2,3}m: single-file fp32, 2-shard bf16, 3-shard fp32; all with a model-index accuracy."""
    specs = [
        ("acme/tiny-1m", 1, "float32", 0.71),
        ("acme/tiny-2m", 2, "bfloat16", 0.82),
        ("acme/tiny-3m", 3, "float32", 0.90),
    ]
    folders = {}
    for seed, (repo_id, shards, dtype, accuracy) in enumerate(specs):
        folder = write_model(
            tmp_path / "repos" / repo_id,
            tensors(seed),
            shards=shards,
            dtype=dtype,
            card={"library_name": "pytorch", "model-index": model_index(repo_id, accuracy)},
        )
        fake_hub.add_folder(repo_id, folder)
        folders[repo_id] = folder
    return folders


def test_scan_matches_analyze_row_for_row(fake_hub, family, tmp_path, capsys):
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--author", "acme") == 0
    for repo_id, folder in family.items():
        capsys.readouterr()
        # scans compute in float32 unless told otherwise; analyze in float64
        assert main(["analyze", str(folder), "--precision", "float32", "--format", "json"]) == 0
        expected = json.loads(capsys.readouterr().out)
        got = lake_rows(lake, f"SELECT * FROM layers WHERE repo_id = '{repo_id}' ORDER BY layer_id, slice_id")
        assert [r["name"] for r in got] == [r["name"] for r in expected]
        for ours, theirs in zip(got, expected, strict=True):
            for column in ("layer_id", "N", "M", "num_evals", "fit_status", "shard"):
                assert ours[column] == theirs[column], (repo_id, column)
            for column in ("alpha", "lambda_max", "log_norm", "D", "xmin", "stable_rank"):
                # The same bytes through the same code: identical, not merely close.
                assert ours[column] == theirs[column] or (ours[column] is None and theirs[column] is None)
    evals = lake_rows(lake, "SELECT repo_id, metric, value, dataset, split FROM evals ORDER BY repo_id")
    assert [(e["repo_id"], e["metric"], e["value"]) for e in evals] == [
        ("acme/tiny-1m", "accuracy", 0.71),
        ("acme/tiny-2m", "accuracy", 0.82),
        ("acme/tiny-3m", "accuracy", 0.90),
    ]
    models = lake_rows(lake, "SELECT repo_id, family, status, num_shards, revision, options FROM models ORDER BY 1")
    assert all(json.loads(m["options"])["precision"] == "float32" for m in models)
    assert [m["family"] for m in models] == ["tiny"] * 3
    assert [m["num_shards"] for m in models] == [1, 2, 3]
    assert all(m["status"] == "scanned" and len(m["revision"]) == 40 for m in models)


def test_failures_are_recorded_and_reruns_skip(fake_hub, family, tmp_path, capsys):
    rng = np.random.default_rng(9)
    bad_shard = write_model(tmp_path / "bad", tensors(5), shards=2)
    shard = bad_shard / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    fake_hub.add_folder("acme/tiny-corrupt", bad_shard)
    malformed = write_model(
        tmp_path / "malformed",
        {"w.weight": rng.standard_normal((80, 40))},
        card_text="---\nmodel-index: [unclosed\n  - : :\n---\nhello\n",
    )
    fake_hub.add_folder("acme/tiny-malformed", malformed)
    repos = ["acme/tiny-1m", "acme/tiny-2m", "acme/tiny-corrupt", "acme/tiny-malformed", "acme/tiny-missing"]
    lake = tmp_path / "lake"

    assert scan(fake_hub, lake, *repos) == 1
    err = capsys.readouterr().err  # one line per problem, on stderr
    assert "wwhub scan: failed: acme/tiny-missing@main: repository not found" in err
    models = {m["repo_id"]: m for m in lake_rows(lake, "SELECT * FROM models")}
    assert models["acme/tiny-1m"]["status"] == "scanned" and models["acme/tiny-2m"]["status"] == "scanned"
    # A shard cut in half at the commit: its header promises more bytes than the hub lists, so the commit is a failed
    # scan, found before any download (a partial scan would stand for the repo as a good one).
    assert models["acme/tiny-corrupt"]["status"] == "failed"
    assert (
        "model-00002-of-00002.safetensors: corrupt safetensors header: its tensors' data runs to byte"
        in (models["acme/tiny-corrupt"]["reason"])
    )
    # A repo the hub does not know is an attempt, not a models row: it never shadows a scan (there is none here).
    assert "acme/tiny-missing" not in models
    attempts = lake_rows(lake, "SELECT repo_id, revision, status, reason, error_kind FROM attempts")
    assert [(a["repo_id"], a["revision"], a["status"], a["error_kind"]) for a in attempts] == [
        ("acme/tiny-missing", "main", "failed", "not_found")
    ]
    assert "repository not found" in attempts[0]["reason"]
    assert models["acme/tiny-malformed"]["card_status"].startswith("malformed")
    assert models["acme/tiny-malformed"]["num_ok"] == 1  # the weights were still scanned
    assert lake_rows(lake, "SELECT count(*) AS n FROM layers WHERE repo_id = 'acme/tiny-corrupt'") == [{"n": 0}]
    scans = lake_rows(lake, "SELECT * FROM scans")
    assert len(scans) == 1 and scans[0]["listed"] == 5 and scans[0]["failed"] == 2  # the missing, the corrupt
    assert any("tiny-missing" in e for e in json.loads(scans[0]["errors"]))
    layer_count = lake_rows(lake, "SELECT count(*) AS n FROM layers")[0]["n"]

    def weight_reads():
        return sum(1 for m, p, _ in fake_hub.requests if m == "GET" and p.endswith(".safetensors"))

    downloads_before = weight_reads()
    api_before = sum(1 for m, p, _ in fake_hub.requests if p.startswith("/api/models/"))
    assert scan(fake_hub, lake, *repos) == 1  # the missing repo is still missing
    assert "scanned 0" in capsys.readouterr().out
    # Each repo pinned by one resolver request; no per-repo API call but the missing repo's model_info, and not
    # one byte of weights (nor a header) read again.
    assert weight_reads() == downloads_before
    assert sum(1 for m, p, _ in fake_hub.requests if p.startswith("/api/models/")) - api_before == 1
    assert lake_rows(lake, "SELECT count(*) AS n FROM layers")[0]["n"] == layer_count

    assert scan(fake_hub, lake, "--force", "acme/tiny-1m") == 0
    assert "scanned 1" in capsys.readouterr().out
    assert lake_rows(lake, "SELECT count(*) AS n FROM layers")[0]["n"] == layer_count


def test_new_commit_is_scanned_and_both_stay_queryable(fake_hub, family, tmp_path, capsys):
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "acme/tiny-1m") == 0
    fake_hub.commit(
        "acme/tiny-1m", {"model.safetensors": write_model(tmp_path / "v2", tensors(42)) / "model.safetensors"}
    )
    assert scan(fake_hub, lake, "acme/tiny-1m") == 0
    revisions = lake_rows(lake, "SELECT DISTINCT revision FROM layers WHERE repo_id = 'acme/tiny-1m'")
    assert len(revisions) == 2
    latest = lake_rows(lake, "SELECT revision FROM models_latest WHERE repo_id = 'acme/tiny-1m'")
    assert latest[0]["revision"] == fake_hub.repos["acme/tiny-1m"].head.sha


def test_transient_5xx_burst_is_retried(fake_hub, family, tmp_path, capsys):
    fake_hub.fail_5xx(count=2, match="model-00001-of-00002")
    assert scan(fake_hub, tmp_path / "lake", "acme/tiny-2m") == 0
    assert "scanned 1" in capsys.readouterr().out


def test_families_file_and_query_command(fake_hub, family, tmp_path, capsys):
    families = tmp_path / "families.yaml"
    families.write_text("families:\n  tinies:\n    author: acme\n    search: tiny\n    limit: 2\n")
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--families", str(families)) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "query",
                "SELECT family, count(*) AS n FROM models GROUP BY family",
                "--lake",
                str(lake),
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"family": "tinies", "n": 2}]


def test_quantized_blocks_are_skipped_rows_and_pickles_respect_no_pickle(fake_hub, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    quant = tmp_path / "quant"
    quant.mkdir()
    save_file(
        {
            "l.qweight": torch.randint(0, 2**31 - 1, (128, 64), dtype=torch.int32),
            "l.scales": torch.ones(16, 128, dtype=torch.float16),
            "l.qzeros": torch.zeros(16, 8, dtype=torch.int32),
            "lm_head.weight": torch.randn(300, 64),
        },
        str(quant / "model.safetensors"),
    )
    fake_hub.add_folder("acme/quant-4bit", quant)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"w.weight": torch.randn(120, 60)}, pickled / "pytorch_model.bin")
    fake_hub.add_folder("acme/old-pickle", pickled)
    lake = tmp_path / "lake"

    assert scan(fake_hub, lake, "acme/quant-4bit", "acme/old-pickle", "--no-pickle") == 0
    models = {m["repo_id"]: m for m in lake_rows(lake, "SELECT * FROM models")}
    quant = models["acme/quant-4bit"]
    assert quant["status"] == "scanned" and "1 layer skipped: awq" in quant["reason"]
    layers = {r["name"]: r for r in lake_rows(lake, "SELECT * FROM layers WHERE repo_id = 'acme/quant-4bit'")}
    # One skipped row for the quantized module (its random shapes fit no AWQ layout), none for scales or zeros.
    assert set(layers) == {"l.weight", "lm_head.weight"}
    assert layers["l.weight"]["fit_status"] == "skipped"
    assert "does not pack the 128 outputs" in layers["l.weight"]["reason"]
    assert layers["l.weight"]["source_tensors"] == "l.qweight,l.qzeros,l.scales"
    assert layers["lm_head.weight"]["fit_status"] == "ok"  # float tensors beside the blocks are analyzed
    assert models["acme/old-pickle"]["status"] == "unsupported" and "--no-pickle" in models["acme/old-pickle"]["reason"]

    assert scan(fake_hub, lake, "acme/old-pickle") == 0  # without --no-pickle: loaded with weights_only=True
    rows = lake_rows(lake, "SELECT fit_status FROM layers WHERE repo_id = 'acme/old-pickle'")
    assert rows == [{"fit_status": "ok"}]


def test_wrong_etag_and_ignored_range_still_give_the_same_rows(fake_hub, family, tmp_path):
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    assert scan(fake_hub, clean, "acme/tiny-3m") == 0
    # The client keys its cache by ETag but does not trust it for content; a server that ignores Range requests
    # makes header reads fetch whole files. Neither may change a single number.
    fake_hub.wrong_etag(match=".safetensors")
    fake_hub.ignore_range(match=".safetensors")
    assert scan(fake_hub, faulty, "acme/tiny-3m") == 0
    query = "SELECT name, alpha, lambda_max, D FROM layers ORDER BY layer_id"
    assert lake_rows(faulty, query) == lake_rows(clean, query)


def test_repo_ids_after_source_local_are_repos_not_folders(tmp_path, capsys):
    root = tmp_path / "repos"
    for name in ("a-1m", "b-1m"):
        write_model(root / "org" / name, {"w.weight": np.random.default_rng(0).standard_t(3, (80, 40))})
    assert main(["scan", "--source", "local", str(root), "org/b-1m", "--lake", str(tmp_path / "lake")]) == 0
    assert "listed 1, scanned 1" in capsys.readouterr().out


def test_a_family_named_like_the_pooled_rows_is_refused_before_anything_is_written(tmp_path, capsys):
    """'(all)' is the leaderboard's pooled family: a family of that name would be counted among the pooled rows."""
    root = tmp_path / "repos"
    write_model(root / "org" / "a-1m", {"w.weight": np.random.default_rng(0).standard_t(3, (80, 40))})
    lake = tmp_path / "lake"
    assert (
        main(["scan", "--source", "local", str(root), "--family", "(all)", "--search", "a", "--lake", str(lake)]) == 2
    )
    assert "--family '(all)': names in parentheses are reserved" in capsys.readouterr().err
    assert not lake.exists()


def test_newer_eval_results_files_land_beside_the_model_index(fake_hub, tmp_path, caplog):
    folder = write_model(tmp_path / "evals", tensors(7), card={"model-index": model_index("acme/evals-1m", 0.8)})
    (folder / ".eval_results").mkdir()
    (folder / ".eval_results" / "digits.yaml").write_text(
        "- dataset: {id: acme/digits-bench, task_id: digits_top1}\n  value: 0.93\n"
        "- dataset: {id: acme/digits-bench, task_id: digits_top5}\n  value: 0.99\n"
    )
    (folder / ".eval_results" / "broken.yaml").write_text("dataset: [unclosed\n")
    fake_hub.add_folder("acme/evals-1m", folder)
    plain = write_model(tmp_path / "plain", tensors(8), card={"model-index": model_index("acme/plain-1m", 0.7)})
    fake_hub.add_folder("acme/plain-1m", plain)
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "acme/evals-1m", "acme/plain-1m") == 0
    evals = lake_rows(lake, "SELECT repo_id, source, metric, dataset, value FROM evals ORDER BY repo_id, source, 3")
    assert [tuple(e.values()) for e in evals] == [
        ("acme/evals-1m", "eval_results", "digits_top1", "acme/digits-bench", 0.93),
        ("acme/evals-1m", "eval_results", "digits_top5", "acme/digits-bench", 0.99),
        ("acme/evals-1m", "model-index", "accuracy", "digits", 0.8),
        ("acme/plain-1m", "model-index", "accuracy", "digits", 0.7),
    ]
    # The Hub returns them only when asked: one extra request, and only for the repo that has such files.
    expanded = [p for m, p, _ in fake_hub.requests if m == "GET" and "/api/models/" in p]
    assert sum("evals-1m" in p for p in expanded) == 2 and sum("plain-1m" in p for p in expanded) == 1
    assert "broken.yaml" in caplog.text  # the client names the file it skipped


def test_an_unexpected_error_in_one_shard_is_recorded_and_the_scan_goes_on(fake_hub, family, tmp_path, monkeypatch):
    import flows.analysis.model_analysis

    real = flows.analysis.model_analysis.open_shard

    def open_shard(path, fmt="safetensors"):
        if path.name == "model-00002-of-00003.safetensors":
            raise RuntimeError("a bug we did not foresee")
        return real(path, fmt)

    monkeypatch.setattr(flows.analysis.model_analysis, "open_shard", open_shard)
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--author", "acme") == 1
    models = {m["repo_id"]: m for m in lake_rows(lake, "SELECT repo_id, status, reason FROM models")}
    assert models["acme/tiny-1m"]["status"] == models["acme/tiny-2m"]["status"] == "scanned"
    assert models["acme/tiny-3m"]["status"] == "partial"
    assert "model-00002-of-00003.safetensors: unexpected RuntimeError: a bug" in models["acme/tiny-3m"]["reason"]
    statuses = lake_rows(lake, "SELECT shard, fit_status FROM layers WHERE repo_id = 'acme/tiny-3m'")
    assert {(r["shard"][6:11], r["fit_status"]) for r in statuses} == {
        ("00001", "ok"),
        ("00002", "failed"),
        ("00003", "ok"),
    }


def test_card_fields_that_are_not_text_and_a_card_over_the_cap_never_cost_the_weights(fake_hub, tmp_path):
    """Each card below once failed its model's commit (a number, mapping, list or date where the lake keeps text)
    or the whole model on every scan (a README over the 2 MB cap): now the weights are scanned and the card's status
    says what was set aside."""
    from flows.sources.cards import MAX_CARD_BYTES

    cards = {
        "acme/lib-int": "---\nlibrary_name: 5\n---\n",
        "acme/lib-map": "---\nlibrary_name: {a: 1}\n---\n",
        "acme/lib-date": "---\nlibrary_name: 2024-01-01\n---\n",
        "acme/pipe-list": "---\npipeline_tag: [a, b]\n---\n",
        "acme/base-ints": "---\nbase_model: [1, 2]\n---\n",
        "acme/huge-card": "---\nlibrary_name: pytorch\n---\n" + "a" * MAX_CARD_BYTES,
    }
    for seed, (repo_id, card) in enumerate(cards.items()):
        fake_hub.add_folder(repo_id, write_model(tmp_path / repo_id, tensors(seed), card_text=card))
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, *cards) == 0
    models = {m["repo_id"]: m for m in lake_rows(lake, "SELECT * FROM models")}
    assert {m["status"] for m in models.values()} == {"scanned"} and len(models) == len(cards)
    assert all(m["num_ok"] >= 1 for m in models.values())
    assert models["acme/lib-int"]["card_status"] == "ignored library_name (int, not text)"
    assert models["acme/lib-map"]["card_status"] == "ignored library_name (dict, not text)"
    assert models["acme/lib-date"]["card_status"] == "ignored library_name (date, not text)"
    assert models["acme/pipe-list"]["card_status"] == "ignored pipeline_tag (list, not text)"
    assert models["acme/base-ints"]["card_status"] == "ignored base_model (list, not text)"
    assert models["acme/base-ints"]["reason"] == "card ignored base_model (list, not text)"
    assert models["acme/huge-card"]["card_status"].startswith("malformed: README.md: ")
    assert [r for r, m in models.items() if m["library_name"] is not None] == ["acme/huge-card"]  # the hub's reading
