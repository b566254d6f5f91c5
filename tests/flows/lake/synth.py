"""Synthetic lake rows (no weights, no scans): models with layers, ESDs and evals, for tests of the lake itself."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import numpy as np


def model_tables(repo_id: str, revision: str = "r1", family: str = "fam", layers: int = 20, seed: int = 0) -> dict:
    """One model's rows for every table a scan writes, with metrics drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    key = dict(repo_id=repo_id, revision=revision, family=family)
    alphas = rng.uniform(2.0, 6.0, layers)
    layer_rows = [
        dict(
            key,
            shard="model.safetensors",
            layer_id=i,
            name=f"layers.{i}.weight",
            slice_id=-1,
            N=64,
            M=32,
            alpha=float(a),
            log_spectral_norm=float(rng.normal()),
            fit_status="ok",
            quantization="",
        )
        for i, a in enumerate(alphas)
    ]
    esd_rows = [
        dict(
            key,
            layer_id=i,
            name=f"layers.{i}.weight",
            slice_id=-1,
            storage="full",
            num_evals=4,
            evals=sorted(rng.uniform(0.1, 10, 4).tolist()),
        )
        for i in range(layers)
    ]
    evals = [
        dict(
            key,
            source="model-index",
            task="t",
            dataset="d",
            split="test",
            metric="accuracy",
            value=float(rng.uniform(0.5, 0.9)),
        )
    ]
    models = [
        dict(
            key,
            status="scanned",
            scanned_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            alpha=float(alphas.mean()),
            num_layers=layers,
            num_ok=layers,
        )
    ]
    return {"layers": layer_rows, "esd": esd_rows, "evals": evals, "models": models}


def fill(
    lake, count: int, layers: int = 20, prefix: str = "org/m", family_of=None, seed: int = 0, fold: bool = True
) -> list[str]:
    """Commit ``count`` synthetic models, one commit each (``fold=False``: one segment each, never folded)."""
    repos = []
    for i in range(count):
        repo_id = f"{prefix}{i:04d}"
        family = family_of(i) if family_of else "fam"
        tables = model_tables(repo_id, family=family, layers=layers, seed=seed + i)
        key = {"repo_id": repo_id, "revision": "r1"}
        lake.commit(tables, replace={t: [key] for t in tables}, fold=fold)
        repos.append(repo_id)
    return repos


def rows(lake_root, sql: str, parameters=()) -> list[tuple]:
    """All rows of a query over the lake (``?`` bound to ``parameters``), as tuples (to compare two states)."""
    from flows.lake.sql import run_query

    return [tuple(r.values()) for r in run_query(lake_root, sql, parameters=list(parameters))]


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path → sha256): equal before and after means nothing changed."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
