"""--precision float32 against float64 on real and LLM-shaped models: alphas within 1% on >= 95% of ok layers, and
the ranks of the model-averaged metrics across a family unchanged (issue #11). MiniLM's own check, every layer within
1%, is in test_conformance.py."""

import math
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file

import ww_core

DEMO = Path(__file__).resolve().parents[2] / "flows" / "demo" / "repos" / "wwhub-demo"
# Metrics the leaderboards rank models by (the model averages); mp_softrank needs mp_fit and is NaN here.
RANKED = ("alpha", "alpha_weighted", "log_alpha_norm", "log_norm", "log_spectral_norm", "stable_rank")


def analyze_both(tensors: dict[str, np.ndarray]) -> tuple[list, list]:
    return (
        list(ww_core.analyze_model(tensors.items(), precision="float64")),
        list(ww_core.analyze_model(tensors.items(), precision="float32")),
    )


def alpha_errors(pairs: list[tuple[list, list]]) -> np.ndarray:
    errors = []
    for float64_rows, float32_rows in pairs:
        for a, b in zip(float64_rows, float32_rows, strict=True):
            if a.fit_status == ww_core.FIT_OK:
                assert b.fit_status == ww_core.FIT_OK, a.name
                errors.append(abs(b.alpha - a.alpha) / a.alpha)
    return np.array(errors)


def ranks(models: dict[str, list], metric: str) -> list[str]:
    values = {name: getattr(ww_core.summarize(rows), metric) for name, rows in models.items()}
    assert not any(math.isnan(v) for v in values.values()), metric
    return sorted(values, key=values.get)


def assert_family_agrees(models: dict[str, tuple[list, list]]) -> None:
    errors = alpha_errors(list(models.values()))
    # The bar of issue #11: 1% on at least 95% of ok layers (float32's own rounding is ~1e-7 on each eigenvalue; a
    # larger change means the KS minimum moved to a neighbouring xmin candidate).
    assert np.mean(errors <= 0.01) >= 0.95, np.sort(errors)[-5:]
    float64_rows = {name: rows for name, (rows, _) in models.items()}
    float32_rows = {name: rows for name, (_, rows) in models.items()}
    for metric in RANKED:
        assert ranks(float64_rows, metric) == ranks(float32_rows, metric), metric


@pytest.mark.parametrize("family", ["digits-mlp-bs", "digits-mlp-w"])
def test_demo_families_keep_their_alphas_and_ranks_in_float32(family):
    models = {
        folder.name: analyze_both(load_file(str(folder / "model.safetensors")))
        for folder in sorted(DEMO.glob(f"{family}*"))
    }
    assert len(models) >= 5
    assert_family_agrees(models)


def llm_shaped(tail_index: float, seed: int, hidden: int = 512, intermediate: int = 1376, blocks: int = 2) -> dict:
    """A small Llama-shaped bf16 model (embedding, q/k/v/o with 4x grouped key/value heads, gate/up/down,
    lm_head), i.i.d. heavy-tailed weights ``g * u^(-1/tail_index)`` as benchmarks/llama_checkpoint.py makes them."""
    rng = np.random.default_rng(seed)
    shapes = {"model.embed_tokens.weight": (4000, hidden)}
    for i in range(blocks):
        shapes |= {
            f"model.layers.{i}.self_attn.q_proj.weight": (hidden, hidden),
            f"model.layers.{i}.self_attn.k_proj.weight": (hidden // 4, hidden),
            f"model.layers.{i}.self_attn.v_proj.weight": (hidden // 4, hidden),
            f"model.layers.{i}.self_attn.o_proj.weight": (hidden, hidden),
            f"model.layers.{i}.mlp.gate_proj.weight": (intermediate, hidden),
            f"model.layers.{i}.mlp.up_proj.weight": (intermediate, hidden),
            f"model.layers.{i}.mlp.down_proj.weight": (hidden, intermediate),
        }
    shapes["lm_head.weight"] = (4000, hidden)
    tensors = {}
    for name, shape in shapes.items():
        w = rng.standard_normal(shape, dtype=np.float32)
        w *= rng.random(shape, dtype=np.float32).clip(1e-6) ** np.float32(-1 / tail_index)
        tensors[name] = (w / np.float32(math.sqrt(shape[1]))).astype(ml_dtypes.bfloat16)
    return tensors


@pytest.mark.slow
def test_an_llm_shaped_family_keeps_its_alphas_and_ranks_in_float32():
    models = {f"tail-{t}": analyze_both(llm_shaped(t, seed)) for seed, t in enumerate((2.2, 3.0, 4.0, 6.0))}
    assert_family_agrees(models)


def test_a_rank_deficient_layer_is_fitted_on_its_spectrum_not_on_rounding_noise_in_float32():
    # In float32 the eigenvalues of the null space come out at ~1e-7 lambda_max, far above weightwatcher's 1e-5
    # threshold: a rank-1 layer got alpha 1.42 from 45 "spikes" of noise, while float64 said the fit has 1 eigenvalue.
    rng = np.random.default_rng(3)
    rank_one = np.outer(rng.standard_normal(300), rng.standard_normal(120)).astype(np.float32)
    low_rank = (rng.standard_t(3, (300, 9)) @ rng.standard_normal((9, 120))).astype(np.float32)
    full = (rng.standard_t(3, (300, 120)) / 17).astype(np.float32)
    float64_rows, float32_rows = analyze_both({"rank_one": rank_one, "low_rank": low_rank, "full": full})
    for a, b in zip(float64_rows, float32_rows, strict=True):
        assert (a.fit_status, a.reason) == (b.fit_status, b.reason), a.name
        assert a.matrix_rank == b.matrix_rank and a.rank_loss == b.rank_loss, a.name
        if a.fit_status == ww_core.FIT_OK:
            assert b.alpha == pytest.approx(a.alpha, rel=1e-4) and b.num_pl_spikes == a.num_pl_spikes, a.name
    rank_one_row = float32_rows[0]
    assert rank_one_row.fit_status == ww_core.FIT_FAILED and "1 eigenvalue(s) above 1e-05" in rank_one_row.reason
    assert [r.rank_loss for r in float32_rows] == [119, 111, 0]
    # The null space enters the ESD as zeros: the ESD is what the precision can tell.
    (kept,) = list(ww_core.analyze_model({"low_rank": low_rank}.items(), precision="float32", keep_evals=True))
    assert np.count_nonzero(np.asarray(kept.evals) == 0) == 111


def test_weights_whose_squares_underflow_are_named_as_such():
    (row,) = list(ww_core.analyze_model({"w": np.full((40, 20), 1e-30, np.float32)}.items(), precision="float32"))
    assert row.fit_status == ww_core.FIT_FAILED
    assert (
        row.reason
        == "all eigenvalues are zero (the weights are all zero, or all below 1e-19, whose squares underflow in float32)"
    )
