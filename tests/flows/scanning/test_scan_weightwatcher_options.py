"""weightwatcher's per-layer options on `wwhub scan`: their columns land in the lake's layers table under
weightwatcher's names (rand_bulk_max is the fitted edge, num_traps a layer's spike count)."""

import numpy as np

from flows.cli import main
from flows.lake.sql import run_query
from tests.fakehub import write_model


def test_scan_flags_fill_weightwatcher_columns(tmp_path):
    root = tmp_path / "repos"
    write_model(root / "org" / "a-1m", {"w.weight": np.random.default_rng(0).standard_t(3, (300, 120))})
    lake = tmp_path / "lake"
    argv = ["scan", "--source", "local", str(root), "--lake", str(lake), "--vectors", "--randomize", "--ERG"]
    assert main([*argv, "--tolerance", "0.5", "--xmax", "1"]) == 0
    (row,) = run_query(
        lake,
        "SELECT tail_mean_loc_ratio, bulk_var_part_ratio, rand_bulk_max, rand_iid_bulk_max, num_traps, "
        "rand_num_spikes, num_ERG_spikes, detX_num, weak_rank_loss, sv_max, lambda_max, Q FROM layers",
    )
    assert row["tail_mean_loc_ratio"] > 1 and row["bulk_var_part_ratio"] >= 0
    assert row["rand_bulk_max"] > 0 and row["rand_iid_bulk_max"] > 0
    assert row["num_traps"] == row["rand_num_spikes"] and row["num_ERG_spikes"] == row["detX_num"]
    assert row["weak_rank_loss"] >= 0 and abs(row["sv_max"] ** 2 - row["lambda_max"]) < 1e-9 * row["lambda_max"]
    assert row["Q"] == 2.5
    (model,) = run_query(lake, "SELECT num_trap_layers, options FROM models")
    assert '"vectors": true' in model["options"] and model["num_trap_layers"] in (0, 1)
