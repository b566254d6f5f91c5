"""`wwhub evals import`: CSV, Open LLM Leaderboard Parquet and lm-evaluation-harness JSON, with provenance, and
every bad input refused with one line, exit 2, and the lake unchanged."""

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.cli import main
from flows.lake.sql import run_query
from flows.leaderboard.render import leaderboard_data
from tests.fakehub import model_index, write_model
from tests.flows.lake.synth import tree_hashes
from tests.flows.lakes import write_lake

MODELS = [("fam", f"org/m{i}", 2.0 + i / 10, 0.90 - i / 50, 10**8) for i in range(6)]


@pytest.fixture
def lake(tmp_path):
    return write_lake(tmp_path / "lake", MODELS)


def evals(lake, where="source LIKE 'import:%'"):
    return run_query(lake, f"SELECT * FROM evals WHERE {where} ORDER BY repo_id, metric, dataset")


def refused(lake, capsys, args, message):
    """The import exits 2 with one line naming the problem, and leaves every file of the lake as it was."""
    before = tree_hashes(lake)
    assert main(["evals", "import", *args, "--lake", str(lake)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert tree_hashes(lake) == before


# ---- CSV ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ("repo_id,metric,value,accuracy_pct\norg/m0,accuracy,0.9,1\n", "unknown column(s) accuracy_pct"),
        ("repo,value\norg/m0,0.9\n", "missing column(s) repo_id, metric"),
        ("repo_id,metric,value\n", "no rows under the header"),
        ("", "empty file"),
        ("repo_id,metric,value\norg/m0,accuracy,NaN\n", ":2: accuracy 'NaN': not a finite number"),
        ("repo_id,metric,value\norg/m0,accuracy,inf\n", "not a finite number"),
        ("repo_id,metric,value\norg/m0,accuracy,1e309\n", "accuracy '1e309': not a finite number"),
        ("repo_id,metric,value\norg/m0,accuracy,-0.5\n", "accuracy '-0.5': outside [0, 1]"),
        ("repo_id,metric,value\norg/m0,accuracy,high\n", "'high': not a number"),
        # Python's float() and int() read these; a CSV's numbers are plain decimals.
        ("repo_id,metric,value\norg/m0,perplexity,1_0\n", ":2: perplexity '1_0': not a plain decimal number"),
        ("repo_id,metric,value\norg/m0,accuracy,\uff10.5\n", ":2: accuracy '\uff10.5': not a plain decimal number"),
        ("repo_id,metric,value,stderr\norg/m0,accuracy,0.95,0.0_1\n", ":2: stderr '0.0_1': not a plain decimal"),
        ("repo_id,metric,value,n_shot\norg/m0,accuracy,0.95,1_0\n", ":2: n_shot '1_0' is not a whole number"),
        ("repo_id,metric,value\norg/m0,accuracy,120%\n", "outside [0, 100]"),
        ("repo_id,metric,value\norg/m0,accuracy,0.95\norg/m1,accuracy,93\n", "values on both scales (0.95 and 93)"),
        ("repo_id,metric,value\norg/m0,acc,0.9\norg/m0,accuracy,0.8\n", ":3: org/m0 accuracy on no dataset is already"),
        ("repo_id,metric,value,scale\norg/m0,accuracy,0.9,percentage\n", "scale 'percentage': expected percent"),
        ("repo_id,metric,value\nnot a repo,accuracy,0.9\n", ":2: repo_id 'not a repo' is not a Hub repo id"),
        # huggingface_hub's rule, as scans and families.yaml apply it: quotes, '..' and '--' are no repo id.
        (
            'repo_id,metric,value\n"o\'rg/na""me",accuracy,0.9\n',
            """:2: repo_id 'o\\'rg/na"me' is not a Hub repo id: expected org/name (letters, digits, '-', '_', '.')""",
        ),
        ("repo_id,metric,value\norg/../x,accuracy,0.9\n", ":2: repo_id 'org/../x' is not a Hub repo id"),
        ("repo_id,metric,value,stderr\norg/m0,accuracy,0.95,nan\n", ":2: stderr 'nan': not a finite number"),
        ("repo_id,metric,value,stderr\norg/m0,accuracy,0.95,-1\n", "stderr -1.0: not a finite non-negative"),
        ("repo_id,metric,value,n_shot\norg/m0,accuracy,0.95,-1\n", ":2: n_shot -1: negative"),
        ("repo_id,metric,value\norg/m0,accuracy,0.95,5\n", ":2: 1 more field(s) than the header's 3 columns"),
        ("repo_id,metric,value,metric\norg/m0,accuracy,0.95,f1\n", "column(s) metric more than once in the header"),
    ],
)
def test_bad_csv_is_refused_whole(lake, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    refused(lake, capsys, [str(bad)], message)


def test_excel_semicolon_csv_with_decimal_commas_reads_like_the_comma_one(lake, tmp_path):
    """Excel writes ';'-separated CSV where the decimal mark is a comma (most of Europe): the same values as the
    ','-separated file, exactly (0,71 is 0.71, 93,5% is 93.5 percent), and a tab-separated file the same."""
    files = {
        "excel.csv": "repo_id;metric;value;dataset\norg/m0;accuracy;0,71;imagenet\norg/m1;top-1;93,5%;imagenet\n",
        "plain.csv": "repo_id,metric,value,dataset\norg/m2,accuracy,0.71,imagenet\norg/m3,top-1,93.5%,imagenet\n",
        "tabs.csv": "repo_id\tmetric\tvalue\tdataset\norg/m4\taccuracy\t0.71\timagenet\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        assert main(["evals", "import", str(tmp_path / name), "--lake", str(lake)]) == 0
    stored = {r["repo_id"]: (r["metric"], r["value"], r["scale"], r["dataset"]) for r in evals(lake)}
    assert stored == {
        "org/m0": ("accuracy", 0.71, "fraction", "imagenet"),
        "org/m1": ("accuracy", 93.5, "percent", "imagenet"),
        "org/m2": ("accuracy", 0.71, "fraction", "imagenet"),
        "org/m3": ("accuracy", 93.5, "percent", "imagenet"),
        "org/m4": ("accuracy", 0.71, "fraction", "imagenet"),
    }


def test_percentages_are_read_explicitly_and_never_mixed_with_fractions(lake, tmp_path, capsys):
    percent = tmp_path / "paper.csv"
    percent.write_text("repo_id,metric,value,source\norg/m0,top-1,95%,paper\norg/m1,accuracy,93.5,paper\n")
    fraction = tmp_path / "other.csv"
    fraction.write_text("repo_id,metric,value,dataset\norg/m2,accuracy,0.91,imagenet\n")
    assert main(["evals", "import", str(percent), "--lake", str(lake)]) == 0
    assert "read as percentages: accuracy" in capsys.readouterr().err
    assert main(["evals", "import", str(fraction), "--lake", str(lake)]) == 0
    stored = {r["repo_id"]: (r["metric"], r["raw_metric"], r["value"], r["scale"], r["source"]) for r in evals(lake)}
    assert stored == {
        "org/m0": ("accuracy", "top-1", 95.0, "percent", "import:csv:paper"),
        "org/m1": ("accuracy", "accuracy", 93.5, "percent", "import:csv:paper"),
        "org/m2": ("accuracy", "accuracy", 0.91, "fraction", "import:csv:other.csv"),
    }
    board, _ = leaderboard_data(lake, prefer_import=True)
    values = {r["repo_id"]: r["value"] for r in board}
    # One scale for ranking and correlating: percentages divided by 100.
    assert values["org/m0"] == pytest.approx(0.95) and values["org/m1"] == pytest.approx(0.935)
    assert values["org/m2"] == pytest.approx(0.91)


def test_a_scale_column_or_option_settles_ambiguous_values(lake, tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("repo_id,metric,value\norg/m0,accuracy,0.5\norg/m1,accuracy,0.7\n")
    assert main(["evals", "import", str(small), "--scale", "percent", "--lake", str(lake)]) == 0
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("repo_id,metric,value,scale\norg/m2,accuracy,0.95,fraction\norg/m3,accuracy,93,percent\n")
    assert main(["evals", "import", str(mixed), "--lake", str(lake)]) == 0
    assert {(r["repo_id"], r["scale"]) for r in evals(lake)} == {
        ("org/m0", "percent"),
        ("org/m1", "percent"),
        ("org/m2", "fraction"),
        ("org/m3", "percent"),
    }


def test_models_missing_from_the_lake_are_reported(lake, tmp_path, capsys):
    csv_file = tmp_path / "top1.csv"
    csv_file.write_text("repo_id,metric,value\norg/m0,accuracy,0.9\norg/nowhere,accuracy,0.8\nx/y,accuracy,0.7\n")
    assert main(["evals", "import", str(csv_file), "--lake", str(lake)]) == 0
    err = capsys.readouterr().err
    assert "warning: 2 of 3 models are not in the lake yet (org/nowhere, x/y)" in err
    assert len(evals(lake)) == 3  # kept: they count once those models are scanned


def test_a_second_file_with_the_same_name_does_not_replace_the_first(lake, tmp_path, capsys):
    first, second = tmp_path / "a" / "top1.csv", tmp_path / "b" / "top1.csv"
    for path, repo in ((first, "org/m0"), (second, "org/m1")):
        path.parent.mkdir()
        path.write_text(f"repo_id,metric,value\n{repo},accuracy,0.9\n")
    assert main(["evals", "import", str(first), "--lake", str(lake)]) == 0
    assert main(["evals", "import", str(second), "--lake", str(lake)]) == 0
    assert "kept beside 1 earlier import(s) of another file named csv-top1" in capsys.readouterr().err
    assert {r["repo_id"] for r in evals(lake)} == {"org/m0", "org/m1"}
    first.write_text("repo_id,metric,value\norg/m0,accuracy,0.8\n")  # the same file again, edited: replaces
    assert main(["evals", "import", str(first), "--lake", str(lake)]) == 0
    assert "replaces the previous import of" in capsys.readouterr().err
    assert {(r["repo_id"], r["value"]) for r in evals(lake)} == {("org/m0", 0.8), ("org/m1", 0.9)}


def test_duplicates_across_sources_follow_the_documented_precedence(lake, tmp_path, capsys):
    csv_file = tmp_path / "paper.csv"
    csv_file.write_text("repo_id,metric,value,source\norg/m0,accuracy,0.5,paper\n")
    assert main(["evals", "import", str(csv_file), "--lake", str(lake)]) == 0
    assert "1 (model, metric) pair(s) also come from other sources (org/m0 accuracy)" in capsys.readouterr().err
    board, _ = leaderboard_data(lake)
    card = next(r for r in board if r["repo_id"] == "org/m0")
    assert (card["value"], card["source"]) == (pytest.approx(0.90), "model-index")  # the card wins by default
    board, _ = leaderboard_data(lake, prefer_import=True)
    imported = next(r for r in board if r["repo_id"] == "org/m0")
    assert (imported["value"], imported["source"]) == (0.5, "import:csv:paper")
    assert main(["leaderboard", "--lake", str(lake), "--format", "csv"]) == 0
    assert "source" in capsys.readouterr().out.splitlines()[0].split(",")  # the leaderboard shows the source


# ---- Open LLM Leaderboard ------------------------------------------------------------------------------------------

# The columns of open-llm-leaderboard/contents (v2) as its dataset card declares them; values made up.
OPEN_LLM_COLUMNS = [
    "eval_name",
    "Precision",
    "Type",
    "T",
    "Weight type",
    "Architecture",
    "Model",
    "fullname",
    "Model sha",
    "Average ⬆️",
    "Hub License",
    "Hub ❤️",
    "#Params (B)",
    "Available on the hub",
    "MoE",
    "Flagged",
    "Chat Template",
    "CO₂ cost (kg)",
    "IFEval Raw",
    "IFEval",
    "BBH Raw",
    "BBH",
    "MATH Lvl 5 Raw",
    "MATH Lvl 5",
    "GPQA Raw",
    "GPQA",
    "MUSR Raw",
    "MUSR",
    "MMLU-PRO Raw",
    "MMLU-PRO",
    "Merged",
    "Official Providers",
    "Upload To Hub Date",
    "Submission Date",
    "Generation",
    "Base Model",
]


def open_llm_row(repo_id, scale=1.0, precision="bfloat16", flagged=False, **overrides):
    raw = {"IFEval": 0.45, "BBH": 0.42, "MATH Lvl 5": 0.05, "GPQA": 0.29, "MUSR": 0.38, "MMLU-PRO": 0.30}
    row = {
        "eval_name": f"{repo_id.replace('/', '_')}_{precision}",
        "Precision": precision,
        "Type": "🟢 pretrained",
        "T": "🟢",
        "Weight type": "Original",
        "Architecture": "LlamaForCausalLM",
        "Model": f'<a target="_blank" href="https://huggingface.co/{repo_id}">{repo_id}</a>',
        "fullname": repo_id,
        "Model sha": "0123456789abcdef0123456789abcdef01234567",
        "Hub License": "apache-2.0",
        "Hub ❤️": 3,
        "#Params (B)": 1.24,
        "Available on the hub": True,
        "MoE": False,
        "Flagged": flagged,
        "Chat Template": False,
        "CO₂ cost (kg)": 0.7,
        "Merged": False,
        "Official Providers": False,
        "Upload To Hub Date": "2024-09-25",
        "Submission Date": "2024-10-01",
        "Generation": 0,
        "Base Model": repo_id,
    }
    for name, value in raw.items():
        row[f"{name} Raw"] = value * scale
        row[name] = 100 * (value * scale - 0.1)
    row["Average ⬆️"] = sum(row[name] for name in raw) / len(raw)
    row.update(overrides)
    return row


def write_open_llm(path, rows):
    pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in OPEN_LLM_COLUMNS} for r in rows]), path)
    return path


def test_open_llm_leaderboard_parquet_is_imported_with_provenance(lake, tmp_path, capsys):
    rows = [
        open_llm_row("org/m0"),
        open_llm_row("org/m0", scale=0.5, precision="float16"),  # a second evaluation of the same model
        open_llm_row("org/m1", scale=0.9, **{"GPQA Raw": None, "GPQA": None}),  # a benchmark not run
        open_llm_row("org/m2", flagged=True),
    ]
    parquet = write_open_llm(tmp_path / "train-00000-of-00001.parquet", rows)
    assert main(["evals", "import", "--open-llm-leaderboard", str(parquet), "--lake", str(lake)]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 flagged" in err and "bfloat16 first" in err and "2 empty benchmark cell(s)" in err
    stored = evals(lake)
    assert {r["source"] for r in stored} == {"import:open-llm-leaderboard"}
    m0 = {(r["dataset"], r["metric"]): r for r in stored if r["repo_id"] == "org/m0"}
    assert len(m0) == 13  # six benchmarks × (raw, normalised) + the average
    bbh = m0[("bbh", "accuracy_norm")]
    assert (bbh["value"], bbh["scale"], bbh["n_shot"], bbh["raw_metric"]) == (0.42, "fraction", 3, "BBH Raw")
    mmlu = m0[("mmlu_pro", "normalized_score")]
    assert (mmlu["value"], mmlu["scale"], mmlu["n_shot"]) == (pytest.approx(20.0), "percent", 5)
    assert m0[("open_llm_leaderboard", "normalized_score")]["value"] == pytest.approx(rows[0]["Average ⬆️"])
    assert not any(r["dataset"] == "gpqa" for r in stored if r["repo_id"] == "org/m1")
    board, _ = leaderboard_data(lake, metric="accuracy_norm", dataset="bbh", require_metric=True)
    values = {r["repo_id"]: r["value"] for r in board if r["value"] is not None}
    assert values == {"org/m0": 0.42, "org/m1": pytest.approx(0.42 * 0.9)}


def test_open_llm_leaderboard_from_the_hub(lake, tmp_path, fake_hub):
    parquet = write_open_llm(tmp_path / "contents.parquet", [open_llm_row("org/m3")])
    fake_hub.commit(
        "open-llm-leaderboard/contents",
        {"data/train-00000-of-00001.parquet": parquet, "README.md": b"---\nlicense: apache-2.0\n---\n"},
        repo_type="dataset",
    )
    args = ["evals", "import", "--open-llm-leaderboard", "--endpoint", fake_hub.endpoint, "--lake", str(lake)]
    assert main(args) == 0
    assert {r["repo_id"] for r in evals(lake)} == {"org/m3"}
    assert fake_hub.count("GET", "/datasets/open-llm-leaderboard/contents/resolve/") == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"fullname": None}, "repo_id '' is not a Hub repo id"),
        ({"BBH Raw": -0.2}, "column 'BBH Raw': -0.2: outside [0, 1]"),
        ({"MUSR Raw": float("inf")}, "column 'MUSR Raw': inf: not a finite number"),
    ],
)
def test_bad_open_llm_leaderboard_rows_are_refused_whole(lake, tmp_path, capsys, change, message):
    parquet = write_open_llm(tmp_path / "bad.parquet", [open_llm_row("org/m0"), open_llm_row("org/m1", **change)])
    refused(lake, capsys, ["--open-llm-leaderboard", str(parquet)], message)


def test_a_parquet_of_another_shape_is_refused(lake, tmp_path, capsys):
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"model": ["org/m0"], "score": [0.5]}), other)
    refused(lake, capsys, ["--open-llm-leaderboard", str(other)], "no 'fullname' column")
    text = tmp_path / "notparquet.parquet"
    text.write_text("hello")
    refused(lake, capsys, ["--open-llm-leaderboard", str(text)], "not a readable Parquet file")


# ---- lm-evaluation-harness -----------------------------------------------------------------------------------------


def lm_eval_results(model="org/m0", **task_overrides):
    """A results file in the shape lm-evaluation-harness writes (EvaluationTracker.save_results_aggregated)."""
    results = {
        "arc_challenge": {
            "alias": "arc_challenge",
            "acc,none": 0.41,
            "acc_stderr,none": 0.0144,
            "acc_norm,none": 0.44,
            "acc_norm_stderr,none": 0.0145,
        },
        "gsm8k": {
            "alias": "gsm8k",
            "exact_match,strict-match": 0.12,
            "exact_match_stderr,strict-match": 0.009,
            "exact_match,flexible-extract": 0.15,
            "exact_match_stderr,flexible-extract": "N/A",
        },
        "wikitext": {"alias": "wikitext", "word_perplexity,none": 16.2, "word_perplexity_stderr,none": "N/A"},
    }
    results.update(task_overrides)
    return {
        "results": results,
        "group_subtasks": {"arc_challenge": [], "gsm8k": [], "wikitext": []},
        "configs": {"arc_challenge": {"num_fewshot": 25}, "gsm8k": {"num_fewshot": 5}, "wikitext": {"num_fewshot": 0}},
        "versions": {"arc_challenge": 1.0, "gsm8k": 3.0, "wikitext": 2.0},
        "n-shot": {"arc_challenge": 25, "gsm8k": 5, "wikitext": 0},
        "higher_is_better": {"arc_challenge": {"acc": True, "acc_norm": True}},
        "config": {"model": "hf", "model_args": f"pretrained={model},dtype=bfloat16", "batch_size": "auto"},
        "git_hash": "deadbee",
        "date": 1727000000.0,
        "model_name": model,
        "model_name_sanitized": model.replace("/", "__"),
    }


def test_lm_eval_results_are_imported_per_task_and_metric(lake, tmp_path):
    folder = tmp_path / "out" / "org__m0"
    folder.mkdir(parents=True)
    (folder / "results_2024-09-01T10-00-00.json").write_text(json.dumps(lm_eval_results()))
    (folder / "samples_arc_challenge_2024-09-01T10-00-00.jsonl").write_text("{}\n")
    assert main(["evals", "import", "--lm-eval", str(tmp_path / "out"), "--lake", str(lake)]) == 0
    stored = {(r["dataset"], r["metric"]): r for r in evals(lake)}
    assert set(stored) == {
        ("arc_challenge", "accuracy"),
        ("arc_challenge", "accuracy_norm"),
        ("gsm8k", "exact_match:strict-match"),
        ("gsm8k", "exact_match:flexible-extract"),
        ("wikitext", "word_perplexity"),
    }
    arc = stored[("arc_challenge", "accuracy")]
    assert (arc["value"], arc["stderr"], arc["n_shot"], arc["scale"], arc["raw_metric"]) == (
        0.41,
        0.0144,
        25,
        "fraction",
        "acc",
    )
    assert stored[("gsm8k", "exact_match:flexible-extract")]["stderr"] is None  # "N/A" is no number
    perplexity = stored[("wikitext", "word_perplexity")]
    assert (perplexity["scale"], perplexity["value"]) == (None, 16.2)
    assert {r["source"] for r in stored.values()} == {"import:lm-eval:out"}


def test_lm_eval_results_from_a_model_repo(lake, tmp_path, fake_hub):
    folder = write_model(tmp_path / "m5", {"w": __import__("numpy").ones((4, 4))})
    (folder / "eval").mkdir()
    (folder / "eval" / "results_2024-10-01T00-00-00.json").write_text(json.dumps(lm_eval_results("someone/else")))
    fake_hub.add_folder("org/m5", folder)
    args = ["evals", "import", "--lm-eval", "org/m5", "--endpoint", fake_hub.endpoint, "--lake", str(lake)]
    assert main(args) == 0
    # Files in a model repo belong to that model, whatever model_name the file says.
    assert {r["repo_id"] for r in evals(lake)} == {"org/m5"}


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"config": {}}', "no 'results' object"),
        ("{not json", "not a JSON file"),
        (json.dumps(lm_eval_results(arc_challenge={"acc,none": float("nan")})), "arc_challenge acc,none: nan"),
        (json.dumps(lm_eval_results(arc_challenge={"acc,none": 1.7})), "outside [0, 1]"),
        (json.dumps({k: v for k, v in lm_eval_results().items() if "model" not in k and k != "config"}), "repo_id ''"),
    ],
)
def test_bad_lm_eval_files_are_refused_whole(lake, tmp_path, capsys, content, message):
    bad = tmp_path / "results_bad.json"
    bad.write_text(content)
    refused(lake, capsys, ["--lm-eval", str(bad)], message)


@pytest.mark.parametrize(
    "stderr, message",
    [
        (-0.01, "results_bad.json: arc_challenge acc,none: stderr -0.01: not a finite non-negative number"),
        (float("nan"), "results_bad.json: arc_challenge acc,none: stderr nan: not a finite number"),
        (float("inf"), "results_bad.json: arc_challenge acc,none: stderr inf: not a finite number"),
        ("high", "results_bad.json: arc_challenge acc,none: stderr 'high': not a number"),
    ],
)
def test_lm_eval_stderr_that_cannot_be_stored_is_refused_like_the_csv_one(lake, tmp_path, capsys, stderr, message):
    """The same rule as the CSV importer and `wwhub lake import` (check_row): refused whole, naming the file and
    the task's metric, rather than stored as a row that `lake import` would refuse after an export."""
    bad = tmp_path / "results_bad.json"
    bad.write_text(json.dumps(lm_eval_results(arc_challenge={"acc,none": 0.41, "acc_stderr,none": stderr})))
    refused(lake, capsys, ["--lm-eval", str(bad)], message)


def test_lm_eval_rows_survive_an_export_and_a_lake_import(lake, tmp_path):
    """What `evals import` stores, `lake import` accepts: the evals table exported to Parquet and imported into
    another lake holds the same rows."""
    results = tmp_path / "results_2024-09-01T10-00-00.json"
    results.write_text(json.dumps(lm_eval_results()))
    assert main(["evals", "import", "--lm-eval", str(results), "--lake", str(lake)]) == 0
    out = tmp_path / "evals.parquet"
    args = ["query", "SELECT * FROM evals", "--lake", str(lake), "--format", "parquet", "--out", str(out)]
    assert main(args) == 0
    assert main(["lake", "import", str(out), "--lake", str(tmp_path / "other")]) == 0
    assert evals(tmp_path / "other") == evals(lake)


def test_one_input_at_a_time(lake, tmp_path, capsys):
    refused(lake, capsys, [], "give one input")
    csv_file = tmp_path / "a.csv"
    csv_file.write_text("repo_id,metric,value\norg/m0,accuracy,0.9\n")
    refused(lake, capsys, [str(csv_file), "--lm-eval", str(csv_file)], "give one input")


# ---- model cards ---------------------------------------------------------------------------------------------------


def test_card_values_that_cannot_be_stored_are_named_in_the_models_reason(tmp_path):
    import numpy as np

    def card(value, metric="accuracy"):
        index = model_index("org/x", 0.5, metric=metric)
        index[0]["results"][0]["metrics"][0]["value"] = value
        return {"model-index": index}

    root = tmp_path / "repos"
    cases = {"nan": float("nan"), "inf": "1e309", "neg": -0.5, "pct": "95%", "ok": 0.93}
    for name, value in cases.items():
        weights = {"w": np.random.default_rng(0).normal(size=(32, 32))}
        write_model(root / "acme" / f"card-{name}", weights, card=card(value))
    lake = tmp_path / "lake"
    assert main(["scan", "--source", "local", str(root), "--lake", str(lake), "--family", "cards"]) == 0
    stored = {r["repo_id"]: r for r in run_query(lake, "SELECT * FROM evals")}
    assert set(stored) == {"acme/card-pct", "acme/card-ok"}
    assert (stored["acme/card-pct"]["value"], stored["acme/card-pct"]["scale"]) == (95.0, "percent")
    reasons = {r["repo_id"]: r["reason"] for r in run_query(lake, "SELECT repo_id, reason FROM models")}
    assert "invalid model-index values: accuracy nan: not a finite number" in reasons["acme/card-nan"]
    assert "accuracy '1e309': not a finite number" in reasons["acme/card-inf"]
    assert "accuracy -0.5: outside [0, 1]" in reasons["acme/card-neg"]
    assert reasons["acme/card-ok"] == "" and reasons["acme/card-pct"] == ""
    assert not any(math.isnan(r["value"]) for r in stored.values())
