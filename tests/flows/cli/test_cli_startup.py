"""No start-up tax: `wwhub --help`, `wwhub query` and `import ww_core` load none of the numerical stack they do not use.

Each check runs a fresh interpreter and lists the modules it imported (timings are not asserted: the benchmark
prints them).
"""

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.cli import COMMANDS
from flows.lake.sql import run_query
from tests.fakehub import write_model

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("scipy", "torch", "ww_core.analysis", "ww_core.eigen", "prefect", "safetensors")


def imported_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_import_ww_core_and_its_records_stay_light():
    assert heavy(imported_after("import ww_core")) == []
    assert heavy(imported_after("from ww_core.records import LayerMetrics")) == []


def test_ww_core_analysis_loads_on_first_use_and_scipy_only_for_the_fits_that_need_it():
    analyze = "import ww_core, numpy as np\nw = np.random.default_rng(0).standard_normal((200, 100))\n"
    modules = imported_after(analyze + "ww_core.analyze_matrix(w)")
    # a 100 x 100 eigensolve goes to numpy: torch is imported only for large layers; the power-law fit is numpy's
    assert "ww_core.analysis" in modules and heavy(modules) == ["ww_core.analysis", "ww_core.eigen"]
    assert "scipy" in imported_after(analyze + "ww_core.analyze_matrix(w, mp_fit=True)")


def test_help_imports_no_command_module():
    code = "from flows.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    modules = imported_after(code)
    assert heavy(modules) == []
    assert not any(m.startswith("flows.cli.") and m.split(".")[-1] in COMMANDS for m in modules)


def test_query_imports_no_numerics(tmp_path):
    code = (
        "from flows.cli import main\n"
        f"try:\n    main(['query', 'SELECT 1', '--lake', {str(tmp_path / 'lake')!r}])\nexcept SystemExit:\n    pass"
    )
    modules = imported_after(code)
    assert heavy(modules) == []
    assert "flows.cli.analyze" not in modules


def test_leaderboard_imports_no_numerics(tmp_path):
    # The board and its stored correlations are read with DuckDB: scipy loads only to compute correlations anew.
    code = (
        "from flows.cli import main\n"
        f"try:\n    main(['leaderboard', '--lake', {str(tmp_path / 'lake')!r}])\nexcept SystemExit:\n    pass"
    )
    assert heavy(imported_after(code)) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_table_help_matches_the_module(name):
    module, help_text = COMMANDS[name]
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(f"flows.cli.{module}").register(sub)
    registered = {action.dest: action.help for action in sub._choices_actions}
    # A module may register several commands (smooth and sharpen): the table lists each with its help.
    assert registered[name] == help_text
    assert registered == {other: text for other, (owner, text) in COMMANDS.items() if owner == module}


def test_analyze_of_a_float32_model_imports_only_what_its_work_needs(tmp_path):
    """MiniLM-sized float32 work: no ml_dtypes (~0.7 s with ml_dtypes 0.7.0), no hub client, YAML, tqdm (stderr is
    no terminal here), gguf, torch or scipy; a bf16 checkpoint brings ml_dtypes in, on its first bf16 tensor."""
    rng = np.random.default_rng(0)
    tensors = {"a.weight": rng.standard_t(3, (300, 100)), "b.weight": rng.standard_t(3, (100, 100))}
    float32 = write_model(tmp_path / "f32", tensors, dtype="float32")
    bf16 = write_model(tmp_path / "bf16", tensors, dtype="bfloat16")
    analyze = "from flows.cli import main\nassert main(['analyze', {!r}, '--format', 'csv', '--out', {!r}]) == 0"
    modules = imported_after(analyze.format(str(float32), str(tmp_path / "f32.csv")))
    unneeded = ("ml_dtypes", "huggingface_hub", "yaml", "tqdm", "gguf", "torch", "scipy", "flows.sources.hub")
    assert sorted(m for m in modules if m.split(".")[0] in unneeded or m in unneeded) == []
    assert "ml_dtypes" in imported_after(analyze.format(str(bf16), str(tmp_path / "bf16.csv")))


def wwhub_process(tmp_path, *argv: str) -> tuple[int, set[str]]:
    """(exit code, modules imported) of a whole ``wwhub`` process (``flows.cli.run``, the console script)."""
    script = (
        "import sys, json\nfrom flows.cli import run\n"
        f"sys.argv = ['wwhub', *{list(argv)!r}]\n"
        "try:\n    run()\nexcept SystemExit as stop:\n    code = stop.code\n"
        "print(json.dumps([code, sorted(sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    code, modules = json.loads(out.stdout.strip().splitlines()[-1])
    return code, set(modules)


def write_models_with_accuracies(folder: Path, accuracies: list[float]) -> list[str]:
    """Small local models org/m0, org/m1, ... under ``folder``, each with a card reporting its accuracy; their ids."""
    rng = np.random.default_rng(0)
    for k, accuracy in enumerate(accuracies):
        card = {"model-index": [{"name": f"m{k}", "results": [{"task": {"type": "text-classification"},
                "dataset": {"name": "d", "type": "d", "split": "test"},
                "metrics": [{"type": "accuracy", "value": accuracy}]}]}]}  # fmt: skip
        tensors = {f"l{j}.weight": rng.standard_t(4, (64, 32)).astype(np.float32) for j in range(2)}
        write_model(folder / "org" / f"m{k}", tensors, card=card)
    return [f"org/m{k}" for k in range(len(accuracies))]


def test_scan_and_leaderboard_processes_never_load_pandas(tmp_path):
    # pyarrow would import pandas (0.2 s) on its first conversion of Python values: the scan's commit, the refresh
    # of the correlations and the leaderboard's all convert some.
    write_models_with_accuracies(tmp_path / "src", [0.7, 0.7, 0.7])
    lake = str(tmp_path / "lake")
    code, modules = wwhub_process(tmp_path, "scan", "org/m0", "org/m1", "org/m2", "--source", "local",
                                  str(tmp_path / "src"), "--lake", lake)  # fmt: skip
    assert code == 0 and "pyarrow" in modules and "pandas" not in modules
    # A local scan reads cards and checks repo ids without the hub client (hf_api, its HTTP library: ~0.13 s).
    assert "huggingface_hub.repocard_data" in modules
    assert sorted(m for m in modules if m in ("huggingface_hub.hf_api", "httpx2")) == []
    code, modules = wwhub_process(tmp_path, "leaderboard", "--lake", lake)  # the stored correlations, read by DuckDB
    assert code == 0 and "pandas" not in modules
    code, modules = wwhub_process(tmp_path, "leaderboard", "--prefer-import", "--lake", lake)  # computed anew
    assert code == 0 and "pyarrow" in modules and "pandas" not in modules
    code, _ = wwhub_process(tmp_path, "query", "SELECT count(*) FROM layers", "--lake", lake, "--format", "parquet",
                            "--out", str(tmp_path / "layers.parquet"))  # fmt: skip
    assert code == 0
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "layers.parquet").to_pylist() == [{"count_star()": 6}]


def test_refreshing_the_correlations_never_loads_scipy(tmp_path):
    """A scan refreshes the correlations table and ``leaderboard --prefer-import`` computes it anew: ranks, Kendall's
    τ and its p and the BH adjustment come from flows/leaderboard/rank_tests.py and stats.py, the normal and Pearson
    tails from distributions.py, since importing scipy.stats (0.65-0.87 s) was a third of a one-model scan and
    scipy.special alone 0.16-0.24 s."""
    repos = write_models_with_accuracies(tmp_path / "src", [0.6, 0.8, 0.7])
    lake = str(tmp_path / "lake")
    scan = ["scan", *repos, "--source", "local", str(tmp_path / "src"), "--lake", lake]
    modules = imported_after(
        f"from flows.cli import main\nassert main({scan!r}) == 0\n"
        f"assert main(['leaderboard', '--prefer-import', '--lake', {lake!r}]) == 0"
    )
    assert "flows.leaderboard.rank_tests" in modules and "flows.leaderboard.distributions" in modules
    assert sorted(m for m in modules if m == "scipy" or m.startswith("scipy.")) == []
    tested = "SELECT count(*) AS n FROM correlations WHERE kendall_p IS NOT NULL AND pearson_p_adjusted IS NOT NULL"
    assert run_query(Path(lake), tested)[0]["n"] > 0


def test_analyze_whole_model_process_has_pandas_for_the_weightwatcher_api(tmp_path):
    rng = np.random.default_rng(0)
    model = write_model(
        tmp_path / "m", {"a.weight": rng.standard_t(3, (80, 40)), "b.weight": rng.standard_t(3, (80, 40))}
    )
    code, modules = wwhub_process(tmp_path, "analyze", str(model), "--stacked", "--format", "csv",
                                  "--out", str(tmp_path / "out.csv"))  # fmt: skip
    assert code == 0 and "pandas" in modules
    assert (tmp_path / "out.csv").read_text().count("\n") >= 2
