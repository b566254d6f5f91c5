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
