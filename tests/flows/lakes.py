"""Small lakes for tests, every one built here: models and evals rows without weights (``write_lake``), or every
table a scan writes from real matrices (``write_site_lake``), with the derived correlations table."""

import math
from pathlib import Path

import numpy as np

from flows.lake import Lake
from flows.leaderboard.correlations import refresh_correlations


def write_lake(root, models, metric="accuracy", scale="fraction", correlations=True):
    """A lake of models and card evals without weights. ``models``: (family, repo_id, alpha, value) or (family,
    repo_id, alpha, value, num_params). ``correlations``: refresh the derived correlations table, as a scan does;
    False leaves the lake without one, so readers compute correlations on the spot (the path of ``--prefer-import``,
    ``--dataset`` and a lake whose table predates its models)."""
    lake = Lake.for_writing(root)
    for family, repo_id, alpha, value, *size in models:
        add_model(lake, family, repo_id, alpha, value, size[0] if size else None, metric, scale)
    if correlations:
        refresh_correlations(lake.root)
    return lake.root


def add_model(lake, family, repo_id, alpha, value, num_params=None, metric="accuracy", scale="fraction"):
    """One model (its models row, derived metrics from ``alpha``, and its card's ``value``) as one lake commit."""
    common = dict(repo_id=repo_id, revision="r1", family=family)
    evals = [dict(common, source="model-index", dataset="d", split="test", metric=metric, value=value, scale=scale)]
    row = dict(
        common,
        status="scanned",
        alpha=alpha,
        alpha_weighted=2 * alpha,
        log_alpha_norm=alpha + 1,
        log_spectral_norm=alpha / 3,
        log_norm=math.sqrt(alpha),
        num_layers=1,
        num_ok=1,
        num_params=num_params,
    )
    lake.commit_model(repo_id, "r1", {"evals": evals, "models": [row]})


def scanned_tables(repo_id, revision, family, matrices, scanned_at, scan_id="scan-1", facts=None, evals=()):
    """One model's rows as a scan writes them, from real matrices: ``matrices`` is [(name, W, decoding columns)],
    analyzed by ww_core (randomized, seeded, eigenvalues kept for the ESD tail and sketch)."""
    import json

    import ww_core
    from flows.lake.esd import esd_row

    key = dict(repo_id=repo_id, revision=revision, family=family)
    metrics = list(ww_core.analyze_model(((name, w) for name, w, _ in matrices), randomize=True, keep_evals=True))
    decoding = {name: extra for name, _, extra in matrices}
    layers = [
        dict(
            key,
            shard="model.safetensors",
            source_tensors=m.name,
            **m.as_row(),
            **{"quantization": ""} | decoding[m.name],
        )
        for m in metrics
    ]
    summary = ww_core.summarize(metrics)
    model = dict(
        key,
        status="scanned",
        reason="",
        scanned_at=scanned_at,
        scan_id=scan_id,
        wwhub_version="0.1.0",
        source="hub",
        options=json.dumps({"randomize": True, "seed": 0}),
        card_status="ok",
        model_kind="model",
        quantization="",
        num_params=sum(int(w.size) for _, w, _ in matrices),
        **summary.as_dict(),
    ) | (facts or {})
    return {
        "layers": layers,
        "esd": [row for m in metrics if (row := esd_row(key, m)) is not None],
        "evals": [dict(key, scale="fraction", split="test", task="t") | e for e in evals],
        "models": [model],
    }


def _heavy_tailed(rng, rows, columns, tail):
    return (rng.standard_t(tail, (rows, columns)) / math.sqrt(rows)).astype(np.float64)


def write_site_lake(root, hostile: str | None = None):
    """A lake with what every part of the static site shows, every row from ww_core on real matrices: two families;
    a repo scanned at two commits; a fine-tune with its distances to its base; a mixture-of-experts model with
    quantized layers; skipped and failed layers; a correlation trap; an adapter; a model whose scan failed; card
    and imported evals. ``hostile``: a text put in every field a card, a file or a family name can fill."""
    import datetime as dt

    from ww_core.distances import layer_distance

    rng = np.random.default_rng(7)
    lake = Lake.for_writing(root)
    day = lambda d: dt.datetime(2026, 1, d, tzinfo=dt.UTC)  # noqa: E731 - a short local helper
    text = hostile or ""
    fam_a, fam_b = "fam-a" + text, "fam-b"

    def dense(prefix, count, tail=3.0, shape=(96, 48)):
        return [(f"{prefix}.{i}.weight", _heavy_tailed(rng, *shape, tail + i / 3), {}) for i in range(count)]

    base_old = dense("model.layers", 5)
    base_new = dense("model.layers", 5, tail=2.5)
    tables = [
        scanned_tables(
            "org/base",
            "a" * 40,
            fam_a,
            base_old,
            day(1),
            evals=[dict(source="model-index", metric="accuracy", value=0.55, dataset="d")],
        ),
        scanned_tables(
            "org/base",
            "b" * 40,
            fam_a,
            base_new,
            day(10),
            scan_id="scan-2",
            facts=dict(library_name="transformers" + text, pipeline_tag="text-generation" + text),
            evals=[dict(source="model-index", metric="accuracy", value=0.61, dataset="d" + text, task="t" + text)],
        ),
    ]
    tuned = [(name, w + 0.05 * _heavy_tailed(rng, *w.shape, 4.0), {}) for name, w, _ in base_new]
    finetune = scanned_tables(
        "org/base-ft",
        "c" * 40,
        fam_a,
        tuned,
        day(10),
        scan_id="scan-2",
        facts=dict(base_model="org/base"),
        evals=[dict(source="model-index", metric="accuracy", value=0.66, dataset="d")],
    )
    key = dict(repo_id="org/base-ft", revision="c" * 40, family=fam_a, base_repo_id="org/base", base_revision="b" * 40)
    finetune["distances"] = [
        dict(key, **layer_distance(w, base_w, name, i).as_row())
        for i, ((name, w, _), (_, base_w, _)) in enumerate(zip(tuned, base_new, strict=True))
    ]
    tables.append(finetune)
    experts = [
        (
            f"model.layers.0.mlp.experts.{e}.down_proj",
            _heavy_tailed(rng, 96, 48, 2.5 + e),
            {"expert": e, "quantization": "gptq"},
        )
        for e in range(4)
    ]
    tables.append(
        scanned_tables(
            "org/moe",
            "d" * 40,
            fam_a,
            dense("model.attn", 2) + experts,
            day(10),
            scan_id="scan-2",
            facts=dict(quantization="gptq"),
            evals=[dict(source="model-index", metric="accuracy", value=0.58, dataset="d")],
        )
    )
    trapped = _heavy_tailed(rng, 120, 60, 6.0)
    trapped[0, :4] = 40.0  # a few huge elements: shuffling keeps them, so the shuffled matrix still has a spike
    odd = [
        (f"model.layers.0.{text or 'q'}_proj.weight", _heavy_tailed(rng, 96, 48, 3.0), {}),
        ("model.layers.1.trap.weight", trapped, {}),
        ("model.layers.2.tiny.weight", _heavy_tailed(rng, 6, 4, 3.0), {}),  # fewer than min_evals: skipped
        ("model.layers.3.nan.weight", np.full((40, 20), np.nan), {}),  # NaN: failed
    ]
    tables.append(
        scanned_tables(
            "org/odd",
            "e" * 40,
            fam_b,
            odd,
            day(10),
            scan_id="scan-2",
            evals=[dict(source="model-index", metric="accuracy", value=0.52, dataset="d", raw_metric="acc" + text)],
        )
    )
    for i in range(3):
        tables.append(
            scanned_tables(
                f"org/b-{i}",
                "f" * 40,
                fam_b,
                dense("layers", 3, tail=2.5 + i),
                day(10),
                scan_id="scan-2",
                evals=[dict(source="model-index", metric="accuracy", value=0.7 - i / 20, dataset="d")],
            )
        )
    tables.append(
        scanned_tables(
            "org/b-lora",
            "9" * 40,
            fam_b,
            dense("lora", 2),
            day(10),
            scan_id="scan-2",
            facts=dict(model_kind="adapter", base_model="org/b-0"),
            evals=[dict(source="model-index", metric="accuracy", value=0.69, dataset="d")],
        )
    )
    for model in tables:
        first = model["models"][0]
        lake.commit_model(first["repo_id"], first["revision"], model)
    failed = dict(
        repo_id="org/broken",
        revision="0" * 40,
        family=fam_b,
        status="failed",
        scanned_at=day(10),
        scan_id="scan-2",
        reason="model.safetensors: truncated (12 of 40 bytes)" + text,
        num_layers=0,
    )
    lake.commit_model("org/broken", "0" * 40, {"models": [failed]})
    lake.commit(
        {
            "evals": [
                dict(
                    repo_id="org/b-1",
                    family=fam_b,
                    source="import:csv:x" + text,
                    metric="accuracy",
                    value=0.6,
                    scale="fraction",
                    import_id="x",
                )
            ]
        }
    )
    # The second scan could not reach one repo (an attempt: org/b-2 keeps its good scan), and both recorded what
    # fam-b's query listed: the second listing holds every fam-b repo.
    listed = {
        "scan-1": ["org/b-0", "org/b-1", "org/b-2"],
        "scan-2": ["org/b-0", "org/b-1", "org/b-2", "org/odd", "org/b-lora", "org/broken"],
    }
    lake.commit(
        {
            "attempts": [
                dict(
                    repo_id="org/b-2",
                    revision="1" * 40,
                    family=fam_b,
                    scan_id="scan-2",
                    attempted_at=day(11),
                    status="unavailable",
                    reason="hub unavailable: HTTP 503 (4 attempts)" + text,
                    error_kind="unavailable",
                )
            ],
            "memberships": [
                dict(scan_id=scan_id, family=fam_b, repo_id=repo_id, revision="f" * 40, rank=rank, listed_at=started)
                for scan_id, started in (("scan-1", day(1)), ("scan-2", day(10)))
                for rank, repo_id in enumerate(listed[scan_id], start=1)
            ],
        }
    )
    for scan_id, started in (("scan-1", day(1)), ("scan-2", day(10))):
        lake.write_scan(
            dict(
                scan_id=scan_id,
                started_at=started,
                ended_at=started + dt.timedelta(minutes=5),
                families=f"{fam_a},{fam_b}",
                source="hub",
                listed=9,
                scanned=8,
                skipped=0,
                failed=1,
                errors="[]",
                wwhub_version="0.1.0",
                seconds=300.0,
            )
        )
    refresh_correlations(lake.root)
    return lake.root


def write_synthetic_lake(root, models: int = 10_000, layers: int = 12, families: int = 20, esd: bool = False):
    """A lake of ``models`` models × ``layers`` layers in ``families`` families, generated in DuckDB and brought in
    by the public import path (no ww_core: metrics drawn at random, a model's averages and counts from its own
    layers; accuracy falls with mean alpha plus noise). Every 10th model gptq, every 10th+1 awq, every 7th an
    adapter. ``esd``: a tail and sketch per layer, as a default scan stores (the size a real site reads)."""
    import shutil
    import tempfile

    import duckdb

    from flows.lake.transfer import import_paths

    work = Path(tempfile.mkdtemp(prefix="wwhub-synthetic-"))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SELECT setseed(0.42)")
    # Layer metrics drawn at random (a model's alphas centred by its index), then what derives from them.
    con.execute(
        f"""CREATE TABLE drawn AS
        SELECT printf('org%03d/model-%05d', m % {families}, m) AS repo_id, md5(m::VARCHAR) || '00000000' AS revision,
               printf('family-%03d', m % {families}) AS family, 'model.safetensors' AS shard, l AS layer_id,
               printf('model.layers.%d.%s.weight', l // 4, ['q_proj', 'k_proj', 'v_proj', 'o_proj'][l % 4 + 1]) AS name,
               'dense' AS layer_type, 4096 AS N, 1024 AS M, 1 AS rf, -1 AS slice_id, 1024 AS num_evals,
               1.6 + (m % 9) / 4 + 2.5 * random() AS alpha, 1 + random() AS log_spectral_norm, 2 + random() AS log_norm,
               0.5 + random() AS xmin, 0.05 * random() AS D, (20 + 200 * random())::BIGINT AS num_pl_spikes,
               random() < 0.03 AS correlation_trap, 0.2 * random() AS rand_distance,
               CASE m % 10 WHEN 0 THEN 'gptq' WHEN 1 THEN 'awq' ELSE '' END AS quantization,
               'ok' AS fit_status, '' AS reason
        FROM range({models}) t(m), range({layers}) u(l)"""
    )
    con.execute(
        """CREATE TABLE layers AS
        SELECT *, alpha * log_spectral_norm AS alpha_weighted, alpha + log_norm AS log_alpha_norm,
               CASE WHEN alpha < 2 THEN 'over-trained' WHEN alpha > 6 THEN 'under-trained' ELSE '' END AS warning
        FROM drawn"""
    )
    con.execute(
        """CREATE TABLE models AS
        SELECT repo_id, revision, family, 'scanned' AS status, '' AS reason,
               TIMESTAMPTZ '2026-11-01 00:00:00+00' + to_seconds(hash(repo_id) % 86400) AS scanned_at,
               'synthetic' AS scan_id, '0.1.0' AS wwhub_version, 'hub' AS source, '{"seed": 0}' AS options,
               CASE WHEN hash(repo_id) % 7 = 0 THEN 'adapter' ELSE 'model' END AS model_kind,
               any_value(quantization) AS quantization, 'ok' AS card_status, 1000000 * count(*) AS num_params,
               avg(alpha) AS alpha, avg(alpha_weighted) AS alpha_weighted, avg(log_alpha_norm) AS log_alpha_norm,
               avg(log_norm) AS log_norm, avg(log_spectral_norm) AS log_spectral_norm, count(*) AS num_layers,
               count(*) AS num_ok, 0 AS num_failed, 0 AS num_skipped,
               count(*) FILTER (WHERE warning = 'over-trained') AS num_over_trained,
               count(*) FILTER (WHERE warning = 'under-trained') AS num_under_trained,
               count(*) FILTER (WHERE correlation_trap) AS num_trap_layers
        FROM layers GROUP BY repo_id, revision, family"""
    )
    con.execute(
        """CREATE TABLE evals AS
        SELECT repo_id, revision, family, 'model-index' AS source, 'text-generation' AS task, 'mmlu' AS dataset,
               'test' AS split, 'accuracy' AS metric, 0.95 - 0.08 * alpha + 0.05 * random() AS value,
               'fraction' AS scale, CAST(NULL AS VARCHAR) AS import_id
        FROM models"""
    )
    tables = ["layers", "models", "evals"]
    if esd:
        con.execute(
            """CREATE TABLE esd AS
            SELECT repo_id, revision, family, layer_id, name, slice_id, 'tail' AS storage, 1024 AS num_evals,
                   list_transform(range(num_pl_spikes::INTEGER),
                                  lambda i: xmin * pow(1 - (i + 0.5) / num_pl_spikes, -1 / (alpha - 1))) AS evals,
                   list_transform(range(65), lambda i: xmin * i / 64) AS bulk_quantiles, 1024 AS rand_num_evals,
                   list_transform(range(65), lambda i: 2 * xmin * i / 64) AS rand_bulk_quantiles
            FROM layers"""
        )
        tables.append("esd")
    for table in tables:
        # In repo order, as a compacted lake keeps its files (flows/lake/schema.py SORT_KEYS).
        order = "repo_id, layer_id" if table in ("layers", "esd") else "repo_id"
        con.execute(f"COPY (SELECT * FROM {table} ORDER BY {order}) TO '{work / table}.parquet' (FORMAT parquet)")
    con.close()
    import_paths(root, [work])
    shutil.rmtree(work)
    refresh_correlations(root)
    return Path(root)
