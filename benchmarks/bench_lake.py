"""The lake at hub scale (issues #10, #17): a synthetic lake of 100 000 models x 200 layers (~1 000 families, one
reported accuracy each) built through the public import path, then the commands a user times, as whole processes,
next to the floor: the same SQL in a bare DuckDB process over one Parquet file per table holding the same rows.

    python benchmarks/bench_lake.py [--models 100000] [--layers 200] [--rescans 200] [--workdir DIR] [--keep]

Prints: `wwhub lake import` of the generated files (rows in shuffled order) and of an export written by `wwhub query
"SELECT * FROM layers" --format parquet` (whether that export is clustered by repo is printed: a clustered file is
adopted by a copy, any other sorted by repo range), time and disk, next to the floor of any import that rewrites the
rows (a bare DuckDB COPY of the shuffled file, unsorted), and the CPU seconds both spent (the shuffled import is
bound by CPU: its CPU seconds over the cores bound any schedule of the same work); `wwhub query "SELECT count(*)
FROM layers"`, `wwhub leaderboard --family F`, the `correlations` table recomputed in full and after one model
changed (from the cache of points and rank states, in-process) and read back by `wwhub query correlations`, and what
recomputing the pooled rows from the lake would cost instead (reading every point, scipy's Spearman and Kendall over
them); `wwhub scan` of one small model with a reported value (its card alternating between two accuracies, so that
every rescan moves its point) and of one without (whole processes, big and small lake in turn, --scan-repeat times)
into the big lake and into a small lake in the same run: the best of each and the median paired difference; the lake
work of --rescans successive `--force` rescans of models inside the big imported segment (Lake.commit_model of 200
layer rows, folding included): median and the slowest single commit.

Targets (2 cores): import of 20M rows <= 60 s; one-model scan <= 100 ms over the small-lake scan; count <= 0.75 s,
leaderboard <= 1 s, correlations <= 2 s; the slowest commit bounded (no rewrite of the big segment). Needs ~6 GB of
free disk at full size and keeps DuckDB's memory at 4 GB.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.analysis.model_analysis import usable_cores  # noqa: E402
from flows.lake import Lake, transfer  # noqa: E402
from flows.lake.compaction import rewrite_memory  # noqa: E402
from flows.lake.schema import SCHEMAS, quoted  # noqa: E402
from flows.lake.sql import run_query  # noqa: E402
from flows.lake.views import query_files, sql_literal  # noqa: E402
from flows.leaderboard.correlations import refresh_correlations  # noqa: E402
from tests.flows.lake.synth import model_tables  # noqa: E402

WWHUB = [sys.executable, "-m", "flows"]
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

# Realistic values per column (a default scan: no MP fit, no randomization); other columns by type.
LAYER_VALUES = {
    "repo_id": "printf('org%04d/model-%06d', m * {families} // {models}, m)",
    "revision": "md5(m::VARCHAR) || substr(md5((m + 1)::VARCHAR), 1, 8)",
    "family": "printf('family-%04d', m * {families} // {models})",
    "shard": "printf('model-%05d-of-00004.safetensors', l // 50 + 1)",
    "name": "printf('model.layers.%d.%s.weight', l // 7, ['q_proj','k_proj','v_proj','o_proj','gate_proj','up_proj','down_proj'][l % 7 + 1])",  # noqa: E501
    "layer_id": "l",
    "layer_type": "'dense'",
    "N": "4096",
    "M": "(1024 * (1 + l % 4))::BIGINT",
    "rf": "1",
    "slice_id": "-1",
    "num_evals": "(1024 * (1 + l % 4))::BIGINT",
    "alpha": "2 + 4 * random()",
    "alpha_weighted": "(2 + 4 * random()) * (1 + random())",
    "lambda_max": "exp(3 * random())",
    "xmin": "random()",
    "xmax": "exp(3 * random())",
    "D": "0.02 + 0.1 * random()",
    "sigma": "0.05 * random()",
    "num_pl_spikes": "(20 + 300 * random())::BIGINT",
    "warning": "CASE WHEN random() < 0.05 THEN 'over-trained' ELSE '' END",
    "fit_status": "'ok'",
    "reason": "''",
    "quantization": "''",
    "source_tensors": "printf('model.layers.%d.weight', l)",
    "longname": "printf('model.layers.%d', l // 7)",
    "has_esd": "true",
}
# What a default scan leaves empty (no MP fit, no randomization, no detX, ERG or eigenvector metrics; no fingers
# fixed, no PEFT) as a default scan writes it: NaN in a DOUBLE column, NULL in the others, so the files compress, and
# an import finds the columns of one value (``transfer.constant_columns``), as in a real lake's export.
EMPTY_IN_A_DEFAULT_SCAN = (
    "expert Lambda raw_alpha num_spikes sigma_mp mp_softrank bulk_min bulk_max W_scale rand_lambda_max rand_distance "
    "rand_num_spikes num_traps rand_sigma_mp rand_mp_softrank rand_W_scale rand_bulk_min rand_bulk_max "
    "rand_iid_bulk_max ww_softrank ww_maxdist correlation_trap detX_num detX_val detX_val_unrescaled num_ERG_spikes "
    "ERG_gap bulk_mean_vec_entropy bulk_var_vec_entropy tail_mean_vec_entropy tail_var_vec_entropy "
    "bulk_mean_loc_ratio bulk_var_loc_ratio tail_mean_loc_ratio tail_var_loc_ratio bulk_mean_part_ratio "
    "bulk_var_part_ratio tail_mean_part_ratio tail_var_part_ratio Xflag peft"
).split()
LAYER_VALUES.update(
    {
        name: "'NaN'::DOUBLE" if kind == "DOUBLE" else "NULL"
        for name, kind in SCHEMAS["layers"]
        if name in EMPTY_IN_A_DEFAULT_SCAN
    }
)


def column_exprs(table: str, values: dict, families: int, models: int) -> str:
    exprs = []
    for name, kind in SCHEMAS[table]:
        if name in values:
            expression = values[name].format(families=families, models=models)
        elif kind == "DOUBLE":
            expression = "CASE WHEN random() < 0.5 THEN 'NaN'::DOUBLE ELSE 10 * random() END"
        elif kind == "BIGINT":
            expression = "(1000 * random())::BIGINT"
        elif kind == "VARCHAR":
            expression = "''"
        else:
            expression = "NULL"
        exprs.append(f"CAST({expression} AS {kind}) AS {quoted(name)}")
    return ", ".join(exprs)


def generate(floor: Path, models: int, layers: int, families: int) -> None:
    """The floor files: layers.parquet, models.parquet, evals.parquet (zstd), rows shuffled, ~models/families
    models per family."""
    import duckdb

    floor.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": "4GB", "temp_directory": str(floor / ".tmp")})
    base = {k: LAYER_VALUES[k] for k in ("repo_id", "revision", "family")}
    model_values = dict(
        base,
        status="'scanned'",
        scanned_at="TIMESTAMPTZ '2026-11-01 00:00:00+00' + to_seconds(m)",
        scan_id="'bench'",
        num_layers=str(layers),
        num_ok=str(layers),
        alpha="2.5 + (m % 7) / 7 + random()",
        reason="''",
    )
    eval_values = dict(
        base,
        source="'model-index'",
        task="'text-generation'",
        dataset="'mmlu'",
        split="'test'",
        metric="'accuracy'",
        value="0.3 + 0.6 * random()",
        stderr="NULL",  # as a model card gives it (the default for a DOUBLE, NaN half the time, is refused)
        scale="'fraction'",
        n_shot="5",
    )
    plans = {
        "layers": f"FROM range({models}) t(m), range({layers}) u(l)",
        "models": f"FROM range({models}) t(m)",
        "evals": f"FROM range({models}) t(m)",
    }
    for table, values in (("layers", LAYER_VALUES), ("models", model_values), ("evals", eval_values)):
        target = floor / f"{table}.parquet"
        if target.exists():
            continue
        # Rows in no useful order (every row group spans every family), as a COPY of a parallel query gives.
        select = f"SELECT {column_exprs(table, values, families, models)} {plans[table]} ORDER BY random()"
        con.execute(f"COPY ({select}) TO {sql_literal(str(target))} (FORMAT parquet, COMPRESSION zstd)")
    con.close()


def run_once(command: list[str], timeout: float = 600) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of a command as its own process (start-up included); the CPU seconds
    are the user + system time of the process and its children, what the cores spent on it. (inf, inf) when it runs
    past ``timeout``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("inf"), float("inf")
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} failed: {result.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed(command: list[str], repeat: int, timeout: float = 600) -> float:
    """Best wall time of ``repeat`` runs of a command as its own process (start-up included)."""
    return min(run_once(command, timeout)[0] for _ in range(repeat))


def floor_command(floor: Path, sql: str, family: str | None = None) -> list[str]:
    """A bare DuckDB process: views over the single Parquet files and the named queries, then ``sql``."""
    views = [
        f"CREATE VIEW {t} AS SELECT * FROM read_parquet({sql_literal(str(floor / f'{t}.parquet'))})"
        for t in ("layers", "models", "evals")
    ]
    views.append(
        "CREATE VIEW models_latest AS SELECT *, false AS last_attempt_failed, NULL::VARCHAR AS last_attempt_status, "
        "NULL::VARCHAR AS last_attempt_reason FROM models "
        "QUALIFY row_number() OVER (PARTITION BY repo_id ORDER BY scanned_at DESC) = 1"
    )
    # No family listings recorded: every model is shown.
    views.append("CREATE VIEW family_members AS SELECT NULL::VARCHAR AS family, NULL::VARCHAR AS repo_id WHERE false")
    queries = query_files()
    for name in ("reported_values", "reported_accuracy", "leaderboard"):
        views.append(f"CREATE VIEW {name} AS {queries[name]}")
    variable = f"con.execute(\"SET VARIABLE family = '{family}'\")\n" if family else ""
    code = (
        "import duckdb\ncon = duckdb.connect()\n"
        f"for statement in {views!r}:\n    con.execute(statement)\n{variable}"
        f"con.execute({sql!r}).fetchall()\n"
    )
    return [sys.executable, "-c", code]


def rescans(lake: Lake, count: int, models: int, families: int) -> list[float]:
    """Seconds of lake work of each of ``count`` successive ``--force`` rescans of models inside the imported
    segment (the commit a scan makes: 200 layer rows + ESD + evals + models row, replacing the model's rows)."""
    family_of = LAYER_VALUES["family"].replace("{families}", str(families)).replace("{models}", str(models))
    repo_of = LAYER_VALUES["repo_id"].replace("{families}", str(families)).replace("{models}", str(models))
    import duckdb

    picks = range(0, models, max(1, models // count))[:count]
    named = duckdb.execute(
        f"SELECT {repo_of}, md5(m::VARCHAR) || substr(md5((m + 1)::VARCHAR), 1, 8), {family_of} "
        f"FROM (SELECT unnest({list(picks)}) AS m)"
    ).fetchall()
    times = []
    for i, (repo_id, revision, family) in enumerate(named):
        tables = model_tables(repo_id, revision=revision, family=family, layers=200, seed=i)
        for row in tables["esd"]:
            row.update(storage="tail", evals=[float(x) for x in range(100)], bulk_quantiles=[0.0] * 65)
        start = time.perf_counter()
        lake.commit_model(repo_id, revision, tables)
        times.append(time.perf_counter() - start)
    return times


def small_model(folder: Path, accuracy: float = 0.61) -> Path:
    """ROOT/org/tiny-1b (three 64x32 matrices and a card with ``accuracy``) and ROOT/org/plain-1b (the same
    matrices, no card), for `wwhub scan --source local ROOT`."""
    import numpy as np

    from tests.fakehub import write_model

    rng = np.random.default_rng(0)
    tensors = {f"l{k}.weight": rng.standard_t(4, (64, 32)).astype(np.float32) for k in range(3)}
    card = {"model-index": [{"name": "tiny-1b", "results": [{"task": {"type": "text-classification"},
            "dataset": {"name": "bench", "type": "bench", "split": "test"},
            "metrics": [{"type": "accuracy", "value": accuracy}]}]}]}  # fmt: skip
    write_model(folder / "org" / "tiny-1b", tensors, card=card)
    write_model(folder / "org" / "plain-1b", tensors)  # no reported value: no correlation can change
    return folder


def family_peers(folder: Path) -> None:
    """ROOT/org/tiny-2b and ROOT/org/tiny-3b (other matrices, cards with other accuracies): with tiny-1b, a family of
    three models, whose correlations have p-values."""
    import numpy as np

    from tests.fakehub import write_model

    rng = np.random.default_rng(1)
    for name, accuracy in (("tiny-2b", 0.55), ("tiny-3b", 0.70)):
        tensors = {f"l{k}.weight": rng.standard_t(4, (64, 32)).astype(np.float32) for k in range(3)}
        card = {"model-index": [{"name": name, "results": [{"task": {"type": "text-classification"},
                "dataset": {"name": "bench", "type": "bench", "split": "test"},
                "metrics": [{"type": "accuracy", "value": accuracy}]}]}]}  # fmt: skip
        write_model(folder / "org" / name, tensors, card=card)


def scan_seconds(source: Path, lake: Path, repeat: int, *repos: str) -> float:
    command = [*WWHUB, "scan", *repos, "--source", "local", str(source), "--force", "--lake", str(lake)]
    return timed(command, repeat)


def scan_difference(args, sources: list[Path], lake_root: Path, small: Path, repo: str, what: str) -> None:
    """Print the whole-process scans of ``repo`` into the big lake and into ``small``, in turn."""
    for lake in (small, lake_root):  # the small lake now holds the model: both scans are --force rescans
        scan_seconds(sources[1], lake, 1, repo)
    # Interleaved, so that both lakes see the same machine (a shared VM drifts by tens of ms, and by hundreds between
    # runs): the median of the paired differences is the figure least moved by that drift.
    times: dict[Path, list[float]] = {lake_root: [], small: []}
    for run in range(args.scan_repeat):
        for lake, seconds in times.items():
            seconds.append(scan_seconds(sources[run % 2], lake, 1, repo))
    big, least = min(times[lake_root]), min(times[small])
    paired = statistics.median(b - s for b, s in zip(times[lake_root], times[small], strict=True))
    print(
        f"wwhub scan of one 3-matrix model, {what} (whole process, {args.scan_repeat} runs in turn): into the "
        f"{args.models:,}-model lake best {big:.2f} s, median {statistics.median(times[lake_root]):.2f} s; "
        f"into a small lake best {least:.2f} s, median {statistics.median(times[small]):.2f} s; difference "
        f"of the bests {1e3 * (big - least):+.0f} ms, median of the paired differences {1e3 * paired:+.0f} ms "
        "(target <= +100 ms)"
    )


def export(lake: Path, folder: Path) -> None:
    """What a user exports: `wwhub query "SELECT * FROM T" --format parquet` per table (no ORDER BY)."""
    folder.mkdir(parents=True, exist_ok=True)
    for table in ("layers", "models", "evals"):
        command = [*WWHUB, "query", f"SELECT * FROM {table}", "--format", "parquet", "--lake", str(lake)]
        subprocess.run([*command, "--out", str(folder / f"{table}.parquet")], cwd=ROOT, env=ENV, check=True)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def commands(args, floor: Path, lake_root: Path) -> None:
    family = f"family-{42 % args.families:04d}"
    startup = timed([sys.executable, "-c", "import duckdb"], args.repeat)
    cases = [
        (
            "query count(*) layers",
            [*WWHUB, "query", "SELECT count(*) FROM layers"],
            floor_command(floor, "SELECT count(*) FROM layers"),
            0.75,
        ),
        (
            f"leaderboard --family {family}",
            [*WWHUB, "leaderboard", "--family", family, "--format", "csv"],
            floor_command(floor, "SELECT * FROM leaderboard", family),
            1.0,
        ),
    ]
    print(
        f"\n{'command':34} {'wwhub':>8} {'floor':>8} {'ratio':>6} {'target':>7}   (python + import duckdb: "
        f"{startup:.2f} s)"
    )
    for label, command, floor_cmd, target in cases:
        ours = timed([*command, "--lake", str(lake_root)], args.repeat)
        bare = timed(floor_cmd, args.repeat)
        print(f"{label:34} {ours:7.2f}s {bare:7.2f}s {ours / bare:5.2f}x {target:6.2f}s")
    # The derived table: in full (as after `lake import`) and for one model's family and the pooled rows, from the
    # cache of points and rank states (as after a scan of one model).
    start = time.perf_counter()
    refresh_correlations(lake_root)
    full = time.perf_counter() - start
    repo = run_query(lake_root, "SELECT min(repo_id) AS r FROM models WHERE family = ?", parameters=[family])[0]["r"]
    ones = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        refresh_correlations(lake_root, {repo})
        ones.append(time.perf_counter() - start)
    one = min(ones)
    print(f"{'refresh correlations, all (in-process)':34} {full:7.2f}s")
    print(f"{'refresh correlations, one model':34} {one:7.2f}s   ({full / one:.0f}x less; its family + pooled rows)")
    stored = timed([*WWHUB, "query", "correlations", "--lake", str(lake_root)], args.repeat)
    print(f"{'query correlations (stored table)':34} {stored:7.2f}s {'':>8} {'':>6} {2.0:6.2f}s")


def rewrite_floor(source: Path, target: Path) -> tuple[float, float]:
    """(wall, CPU) seconds a bare DuckDB process takes to read ``source`` and write its rows unsorted to one zstd
    file, within the memory an import's rewrite may use: what any import that rewrites the rows (sorted or not)
    cannot go below."""
    code = (
        f"import duckdb\ncon = duckdb.connect(config={{'memory_limit': {rewrite_memory()!r}}})\n"
        f'con.execute("COPY (SELECT * FROM read_parquet({sql_literal(str(source))})) TO {sql_literal(str(target))} '
        '(FORMAT parquet, COMPRESSION zstd)")\n'
    )
    try:
        return run_once([sys.executable, "-c", code], timeout=3600)
    finally:
        target.unlink(missing_ok=True)


def pooled_floor(lake_root: Path) -> None:
    """What recomputing the pooled rows exactly from the lake would cost (what the cache of points and rank states
    spares a scan): reading every model's point and scipy's Spearman and Kendall over all of them, per weight
    metric (in-process)."""
    import numpy as np
    from scipy import stats as scipy_stats

    from flows.leaderboard.correlations import WEIGHT_METRICS, _floats, _points

    start = time.perf_counter()
    points = _points(lake_root, {"prefer_import": False, "dataset": None})
    read = time.perf_counter() - start
    values = _floats(points.column("value"))
    start = time.perf_counter()
    for metric in WEIGHT_METRICS:
        x = _floats(points.column(metric))
        usable = np.isfinite(x) & np.isfinite(values)
        scipy_stats.spearmanr(x[usable], values[usable])
        scipy_stats.kendalltau(x[usable], values[usable])
    ranks = time.perf_counter() - start
    print(
        f"an exact pooled recomputation without the cache: reading the {len(values):,} points {1e3 * read:.0f} ms "
        f"+ scipy Spearman and Kendall for {len(WEIGHT_METRICS)} weight metrics {1e3 * ranks:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--layers", type=int, default=200)
    parser.add_argument("--families", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scan-repeat", type=int, default=9, help="runs of each scan (big and small lake in turn)")
    parser.add_argument("--rescans", type=int, default=200, help="successive --force rescans in the big lake")
    parser.add_argument("--workdir", help="keep the generated files here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="do not delete the work folder")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="wwhub-bench-lake-"))
    floor, first, exported, lake_root = work / "floor", work / "first-lake", work / "export", work / "lake"
    try:
        start = time.perf_counter()
        generate(floor, args.models, args.layers, args.families)
        rows = args.models * args.layers
        print(
            f"generated {rows:,} layer rows, {args.models:,} models, {args.families} families in "
            f"{time.perf_counter() - start:.0f} s ({folder_bytes(floor) / 1e9:.2f} GB of zstd Parquet, shuffled)"
        )
        for path in (first, exported, lake_root):
            shutil.rmtree(path, ignore_errors=True)
        shuffled, shuffled_cpu = run_once([*WWHUB, "lake", "import", str(floor), "--lake", str(first)], timeout=3600)
        rewrite, rewrite_cpu = rewrite_floor(floor / "layers.parquet", work / "rewrite-floor.parquet")
        export(first, exported)
        clustered = transfer._clustered_by_repo(exported / "layers.parquet") is not None
        import_seconds = timed([*WWHUB, "lake", "import", str(exported), "--lake", str(lake_root)], 1, timeout=3600)
        shutil.rmtree(first, ignore_errors=True)
        disk = folder_bytes(lake_root / "data")
        print(
            f"wwhub lake import of the shuffled files: {shuffled:.1f} s; of the `wwhub query --format parquet` export "
            f"({'clustered by repo: adopted' if clustered else 'not clustered by repo: sorted by range'}): "
            f"{import_seconds:.1f} s for {rows:,} layer rows (target <= 60 s at 20M, correlations included); "
            f"disk {disk / 1e9:.2f} GB = {disk / folder_bytes(floor):.2f}x one zstd file per table"
        )
        print(
            f"floor of any import that rewrites the shuffled rows: a bare DuckDB COPY of layers.parquet to one zstd "
            f"file, unsorted, same memory limit ({rewrite_memory()}): {rewrite:.1f} s "
            f"(shuffled import / floor: {shuffled / rewrite:.2f}x)"
        )
        cores = usable_cores()
        # The shuffled import is bound by CPU, not by waiting: what its cores spent says what any schedule of the
        # same work could reach on this machine.
        print(
            f"CPU (user + system): shuffled import {shuffled_cpu:.0f} CPU-s ({shuffled_cpu / shuffled:.2f} of "
            f"{cores} cores busy on average), floor {rewrite_cpu:.0f} CPU-s; {cores} cores give {60 * cores} CPU-s in "
            f"60 s, so the same work on all of them cannot take less than {shuffled_cpu / cores:.0f} s"
        )
        commands(args, floor, lake_root)
        pooled_floor(lake_root)

        # Two versions of the model's card: scans alternate between them, so every rescan moves its point (a rescan
        # that gives the same point changes no correlation and commits nothing, which would time nothing).
        sources = [small_model(work / "models-a", 0.61), small_model(work / "models-b", 0.62)]
        for folder in sources:
            family_peers(folder)
        empty, peers = work / "empty-lake", work / "small-family-lake"
        for lake in (empty, peers):
            shutil.rmtree(lake, ignore_errors=True)
        scan_seconds(sources[0], peers, 1, "org/tiny-2b", "org/tiny-3b")
        for repo, what, small in (
            ("org/tiny-1b", "with a reported accuracy", empty),
            (
                "org/tiny-1b",
                "with a reported accuracy, its family of 3 in the small lake (p-values on both sides)",
                peers,
            ),
            ("org/plain-1b", "no reported value", empty),
        ):
            scan_difference(args, sources, lake_root, small, repo, what)
        times = rescans(Lake(lake_root), args.rescans, args.models, args.families)
        print(
            f"{len(times)} successive --force rescans of models inside the imported segment (lake work per commit, 200 "
            f"layers): median {1e3 * statistics.median(times):.0f} ms, slowest {1e3 * max(times):.0f} ms "
            f"(segments of layers now: {len(Lake(lake_root).snapshot().tables['layers'])})"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
