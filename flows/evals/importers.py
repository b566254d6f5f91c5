"""Readers for the evaluation results people publish, into ``evals`` rows with their provenance.

Every reader returns an ``Import``: the rows (normalised metric names, values checked, the scale each was
reported in) and notes for the user. A value that cannot be stored raises ``ImportFailed`` naming the file, the
row and why: nothing of that file is written (fix it and import again).

Shapes:

* CSV (``wwhub evals import FILE.csv``): columns ``repo_id, metric, value`` and optionally ``dataset, source,
  split, task, scale, n_shot, stderr``; ``95%`` reads as 95 percent. Columns are separated by commas, or by
  semicolons (Excel's CSV where the decimal mark is a comma: there ``0,71`` reads as 0.71) or tabs.
* Open LLM Leaderboard (``--open-llm-leaderboard``): the ``open-llm-leaderboard/contents`` dataset, one Parquet row
  per evaluated model (``fullname`` = repo id, ``Precision``, ``Flagged``, and per benchmark a ``<name> Raw``
  fraction and a normalised ``<name>`` score in percent, plus ``Average ⬆️``), as its dataset card declares
  (https://huggingface.co/datasets/open-llm-leaderboard/contents) and its about page describes
  (https://huggingface.co/docs/leaderboards/open_llm_leaderboard/about: benchmarks, shots, raw metrics).
* lm-evaluation-harness (``--lm-eval``): ``results*.json`` as ``EvaluationTracker.save_results_aggregated`` writes
  them (lm_eval/loggers/evaluation_tracker.py): ``results: {task: {"acc,none": 0.71, "acc_stderr,none": 0.01,
  "alias": ...}}``, ``n-shot: {task: k}``, ``configs: {task: {num_fewshot: k}}``, ``model_name`` and
  ``config.model_args`` (``pretrained=org/name,...``).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..sources.base import check_repo_id, infer_family
from .vocabulary import (
    SCALE_FRACTION,
    SCALE_PERCENT,
    SCALES,
    EvalValueError,
    check_row,
    check_value,
    detect_scale,
    is_proportion,
    normalize_metric,
    parse_value,
)

CSV_REQUIRED = ("repo_id", "metric", "value")
CSV_OPTIONAL = ("dataset", "source", "split", "task", "scale", "n_shot", "stderr")
CSV_DELIMITERS = (",", ";", "\t")
_DECIMAL_COMMA = re.compile(r"^([+-]?\d+),(\d+%?)$")
_WHOLE = re.compile(r"[+-]?[0-9]+")
OPEN_LLM_REPO = "open-llm-leaderboard/contents"
OPEN_LLM_SOURCE = "import:open-llm-leaderboard"
# (column prefix, dataset, shots, metric of the "Raw" column): the six v2 benchmarks.
OPEN_LLM_BENCHMARKS = (
    ("IFEval", "ifeval", 0, "strict_accuracy"),
    ("BBH", "bbh", 3, "accuracy_norm"),
    ("MATH Lvl 5", "math_lvl5", 4, "exact_match"),
    ("GPQA", "gpqa", 0, "accuracy_norm"),
    ("MUSR", "musr", 0, "accuracy_norm"),
    ("MMLU-PRO", "mmlu_pro", 5, "accuracy"),
)
OPEN_LLM_AVERAGE = "Average ⬆️"
# Precisions in the order one evaluation of a model is kept when the leaderboard holds several.
_PRECISIONS = ("bfloat16", "float16", "float32")
# Metrics lm-evaluation-harness reports on a 0-100 scale (sacrebleu's); its other proportions are fractions.
_LM_EVAL_PERCENT = ("bleu", "chrf", "ter")
_LM_EVAL_SKIP = ("alias", "name", "sample_len", "sample_count", "samples")


class ImportFailed(ValueError):
    """A file that cannot be imported as a whole; the message names the file, the row or key, and why."""


@dataclass
class Import:
    source: str  # the provenance every row carries (``import:...``)
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _row(where: str, repo_id: str, source: str, metric_raw: str, value: float, scale: str | None, **extra) -> dict:
    """The ``evals`` row every importer stores, checked as ``wwhub lake import`` checks it (``check_row``), so an
    export of the lake imports back: ImportFailed naming ``where`` otherwise. ``metric`` and ``raw_metric`` default
    to ``metric_raw`` normalised and as given."""
    row = dict(
        repo_id=repo_id,
        revision=None,
        family=infer_family(repo_id),
        source=source,
        task=extra.get("task", ""),
        dataset=extra.get("dataset", ""),
        split=extra.get("split", ""),
        metric=extra.get("metric") or normalize_metric(metric_raw),
        value=value,
        scale=scale,
        n_shot=extra.get("n_shot"),
        raw_metric=extra.get("raw_metric") or metric_raw,
        stderr=extra.get("stderr"),
    )
    try:
        check_row(row["metric"], row["value"], row["scale"], row["stderr"], row["n_shot"])
    except EvalValueError as err:
        raise ImportFailed(f"{where}: {err}") from None
    return row


def _check_repo_id(repo_id: str, where: str) -> str:
    """``repo_id`` stripped, if it is a Hub repo id as a scan checks one (``check_repo_id``), else ImportFailed."""
    try:
        return check_repo_id((repo_id or "").strip(), "repo_id")
    except ValueError as err:
        raise ImportFailed(f"{where}: {err}") from None


def _duplicates(rows: list[dict], where: list[str]) -> None:
    seen: dict[tuple, str] = {}
    for row, place in zip(rows, where, strict=True):
        key = (row["repo_id"], row["metric"], row["dataset"], row["split"], row["n_shot"])
        if key in seen:
            raise ImportFailed(
                f"{place}: {row['repo_id']} {row['metric']} on {row['dataset'] or 'no dataset'} is already given at "
                f"{seen[key]}; keep one"
            )
        seen[key] = place


def _delimiter(header: str) -> str:
    """The column separator of a CSV file whose first line is ``header``: the first of comma, semicolon and tab
    that splits it into the required columns (a comma when none does: the missing columns are then named)."""
    for delimiter in CSV_DELIMITERS:
        names = {name.strip() for name in next(csv.reader([header], delimiter=delimiter), [])}
        if names.issuperset(CSV_REQUIRED):
            return delimiter
    return ","


def _check_csv_header(path: Path, columns: list[str]) -> None:
    """Every required column, each once, and no other: ImportFailed naming what is wrong."""
    if not columns:
        raise ImportFailed(f"{path}: empty file; expected a header {', '.join(CSV_REQUIRED)} and rows")
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise ImportFailed(
            f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(CSV_REQUIRED)} in the first line, "
            "separated by commas, semicolons or tabs"
        )
    unknown = [c for c in columns if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if unknown:
        raise ImportFailed(
            f"{path}: unknown column(s) {', '.join(unknown)}; known: {', '.join(CSV_REQUIRED + CSV_OPTIONAL)}"
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:  # csv.DictReader would keep the last one's values silently
        raise ImportFailed(f"{path}: column(s) {', '.join(repeated)} more than once in the header")


def read_csv(path: Path, scale: str | None = None) -> Import:
    """A hand-made CSV. The scale of each (source, metric) comes from a ``scale`` column, else ``scale``
    (``--scale``), else the values: a proportion above 1 anywhere makes that group percent; values on both sides
    of 1 in one group are refused as ambiguous."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            delimiter = _delimiter(handle.readline())
            handle.seek(0)
            reader = csv.DictReader(handle, delimiter=delimiter)
            columns = [c.strip() for c in reader.fieldnames or []]
            records = list(reader)
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ImportFailed(f"{path}: cannot read it as CSV ({err})") from None
    _check_csv_header(path, columns)
    if not records:
        raise ImportFailed(f"{path}: no rows under the header")
    parsed = []
    for line, raw in enumerate(records, start=2):
        extra = [v for v in raw.get(None) or [] if v.strip()]
        if extra:
            raise ImportFailed(f"{path}:{line}: {len(extra)} more field(s) than the header's {len(columns)} columns")
        record = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if delimiter == ";":
            # Semicolons separate columns where a comma is the decimal mark: 0,71 is 0.71 there.
            record = {k: _DECIMAL_COMMA.sub(r"\1.\2", v) for k, v in record.items()}
        where = f"{path}:{line}"
        repo_id = _check_repo_id(record["repo_id"], where)
        if not record["metric"]:
            raise ImportFailed(f"{where}: empty metric")
        metric = normalize_metric(record["metric"])
        try:
            value, text_scale = parse_value(record["value"])
        except EvalValueError as err:
            raise ImportFailed(f"{where}: {metric} {record['value']!r}: {err}") from None
        row_scale = (record.get("scale") or "").lower() or None
        if row_scale is not None and row_scale not in SCALES:
            raise ImportFailed(f"{where}: scale {record['scale']!r}: expected percent or fraction")
        if not is_proportion(metric):
            if row_scale or text_scale:
                raise ImportFailed(f"{where}: {metric} {record['value']!r}: a scale, but {metric} is not a proportion")
            parsed.append((where, record, repo_id, metric, value, None))
            continue
        parsed.append((where, record, repo_id, metric, value, row_scale or text_scale or scale))
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _, record, _, metric, value, given in parsed:
        if given is None:
            groups[(record.get("source") or path.name, metric)].append(value)
    detected = {}
    for key, values in groups.items():
        try:
            detected[key] = detect_scale(key[1], values)
        except EvalValueError as err:
            raise ImportFailed(f"{path}: source {key[0]!r}: {err}") from None
    result = Import(f"import:csv:{path.name}")
    places = []
    for where, record, repo_id, metric, value, given in parsed:
        source = record.get("source") or path.name
        row_scale = given or detected[(source, metric)]
        stderr, n_shot = _checked_csv_row(where, record, metric, value, row_scale)
        extra = {k: record.get(k) or "" for k in ("dataset", "split", "task")}
        result.rows.append(
            _row(
                where,
                repo_id,
                f"import:csv:{source}",
                record["metric"],
                value,
                row_scale,
                n_shot=n_shot,
                stderr=stderr,
                **extra,
            )
        )
        places.append(where)
    _duplicates(result.rows, places)
    percent = sorted({r["metric"] for r in result.rows if r["scale"] == SCALE_PERCENT})
    if percent:
        result.notes.append(f"read as percentages: {', '.join(percent)} (stored with scale=percent)")
    return result


def _checked_csv_row(where: str, record: dict, metric: str, value: float, scale: str | None) -> tuple:
    """(stderr, n_shot) of a CSV row whose value and scale are read; ImportFailed naming the place and the column
    (the value as written) when one cannot be read or the value is out of range (``_row`` checks the rest)."""
    try:
        check_value(metric, value, scale)
    except EvalValueError as err:
        raise ImportFailed(f"{where}: {metric} {record['value']!r}: {err}") from None
    try:
        stderr = parse_value(record["stderr"])[0] if record.get("stderr") else None
    except EvalValueError as err:
        raise ImportFailed(f"{where}: stderr {record['stderr']!r}: {err}") from None
    n_shot = record.get("n_shot") or None
    if n_shot is not None:
        if not _WHOLE.fullmatch(n_shot):  # int() also reads '1_0' as 10
            raise ImportFailed(f"{where}: n_shot {n_shot!r} is not a whole number")
        n_shot = int(n_shot)
    return stderr, n_shot


def read_open_llm_leaderboard(path: Path) -> Import:
    """The Open LLM Leaderboard's ``contents`` Parquet: per model and benchmark the raw score (a fraction, under
    the benchmark's metric) and the normalised score (percent, ``normalized_score``), and the average of the
    normalised scores (dataset ``open_llm_leaderboard``). Flagged models are skipped; of several evaluations of
    one model (precisions) the bfloat16 one is kept, then float16, then float32."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise ImportFailed(f"{path}: no such file") from None
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
        raise ImportFailed(f"{path}: not a readable Parquet file ({err.__class__.__name__}: {err})") from None
    columns = set(table.column_names)
    if "fullname" not in columns:
        raise ImportFailed(f"{path}: no 'fullname' column: not the Open LLM Leaderboard contents dataset")
    known = [b for b in OPEN_LLM_BENCHMARKS if f"{b[0]} Raw" in columns or b[0] in columns]
    if not known and OPEN_LLM_AVERAGE not in columns:
        raise ImportFailed(
            f"{path}: none of the benchmark columns ({', '.join(b[0] for b in OPEN_LLM_BENCHMARKS)}, "
            f"{OPEN_LLM_AVERAGE}): not the Open LLM Leaderboard v2 contents dataset"
        )
    result = Import(OPEN_LLM_SOURCE)
    records = table.to_pylist()
    if not records:
        raise ImportFailed(f"{path}: no rows")
    chosen: dict[str, tuple[int, int, dict]] = {}
    flagged = duplicates = 0
    for index, record in enumerate(records):
        if record.get("Flagged"):
            flagged += 1
            continue
        repo_id = _check_repo_id(record.get("fullname") or "", f"{path}: row {index}")
        precision = str(record.get("Precision") or "")
        rank = _PRECISIONS.index(precision) if precision in _PRECISIONS else len(_PRECISIONS)
        if repo_id in chosen:
            duplicates += 1
            if chosen[repo_id][0] <= rank:
                continue
        chosen[repo_id] = (rank, index, record)
    empty = 0
    places = []
    for repo_id, (_, index, record) in sorted(chosen.items()):
        cells = [(OPEN_LLM_AVERAGE, "open_llm_leaderboard", None, "normalized_score", SCALE_PERCENT)]
        for prefix, dataset, shots, metric in known:
            cells.append((f"{prefix} Raw", dataset, shots, metric, SCALE_FRACTION))
            cells.append((prefix, dataset, shots, "normalized_score", SCALE_PERCENT))
        for column, dataset, shots, metric, scale in cells:
            raw = record.get(column)
            if raw is None or (isinstance(raw, float) and math.isnan(raw)):
                empty += column in columns
                continue
            where = f"{path}: row {index} ({repo_id}), column {column!r}"
            try:
                value, _ = parse_value(raw)
                check_value(metric, value, scale)
            except EvalValueError as err:
                raise ImportFailed(f"{where}: {raw!r}: {err}") from None
            result.rows.append(
                _row(
                    where,
                    repo_id,
                    OPEN_LLM_SOURCE,
                    metric,
                    value,
                    scale,
                    dataset=dataset,
                    n_shot=shots,
                    raw_metric=column,
                )
            )
            places.append(where)
    _duplicates(result.rows, places)
    if flagged:
        result.notes.append(f"skipped {flagged} flagged evaluation(s)")
    if duplicates:
        result.notes.append(f"kept one of several evaluations (precisions) for {duplicates} model(s): bfloat16 first")
    if empty:
        result.notes.append(f"{empty} empty benchmark cell(s) left out")
    return result


def _model_of(data: dict) -> str | None:
    """The evaluated model of an lm-eval results file: ``model_name``, else ``pretrained=`` in the model args."""
    name = data.get("model_name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    args = (data.get("config") or {}).get("model_args")
    if isinstance(args, str):
        for part in args.split(","):
            key, _, value = part.partition("=")
            if key.strip() in ("pretrained", "model", "path") and value.strip():
                return value.strip()
    if isinstance(args, dict):
        return args.get("pretrained") or args.get("model")
    return None


def _n_shot(data: dict, task: str) -> int | None:
    shots = (data.get("n-shot") or {}).get(task)
    if shots is None:
        shots = ((data.get("configs") or {}).get(task) or {}).get("num_fewshot")
    return shots if isinstance(shots, int) and not isinstance(shots, bool) else None


def read_lm_eval(paths: list[Path], model: str | None = None, label: str | None = None) -> Import:
    """lm-evaluation-harness ``results*.json`` files. Each ``metric,filter`` key of each task becomes a row
    (``acc,none`` → accuracy; a filter other than ``none`` is kept in the name: ``exact_match:strict-match``), with
    its ``_stderr`` and the task's shots. The model is ``model`` when given, else the file's own. When two files
    give the same task and metric, the later file (by name: results_<date>.json sorts by date) wins."""
    if not paths:
        raise ImportFailed(f"{label or 'lm-eval'}: no results*.json files")
    source = f"import:lm-eval:{label or paths[0].name}"
    result = Import(source)
    latest: dict[tuple, tuple[dict, str]] = {}
    for path in sorted(paths, key=lambda p: p.name):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ImportFailed(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ImportFailed(f"{path}: not a JSON file ({err})") from None
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, dict) or not results:
            raise ImportFailed(f"{path}: no 'results' object: not an lm-evaluation-harness results file")
        repo_id = _check_repo_id(model or _model_of(data) or "", f"{path}: model")
        for task, metrics in results.items():
            if not isinstance(metrics, dict):
                continue
            for key, raw in metrics.items():
                name, _, filter_name = key.partition(",")
                if name in _LM_EVAL_SKIP or name.endswith("_stderr") or raw in ("N/A", None):
                    continue
                metric_raw = name if filter_name in ("", "none") else f"{name}:{filter_name}"
                metric = normalize_metric(name)
                where = f"{path}: {task} {key}"
                scale = None
                if is_proportion(metric):
                    scale = SCALE_PERCENT if metric in _LM_EVAL_PERCENT else SCALE_FRACTION
                try:
                    value, _ = parse_value(raw)
                    check_value(metric, value, scale)
                except EvalValueError as err:
                    raise ImportFailed(f"{where}: {raw!r}: {err}") from None
                stderr = metrics.get(f"{name}_stderr,{filter_name}" if filter_name else f"{name}_stderr")
                try:
                    stderr = parse_value(stderr)[0] if stderr not in (None, "N/A") else None
                except EvalValueError as err:
                    raise ImportFailed(f"{where}: stderr {stderr!r}: {err}") from None
                if filter_name not in ("", "none"):
                    metric = f"{metric}:{filter_name}"
                row = _row(
                    where,
                    repo_id,
                    source,
                    metric_raw,
                    value,
                    scale,
                    metric=metric,
                    dataset=task,
                    n_shot=_n_shot(data, task),
                    stderr=stderr,
                )
                key_ = (row["repo_id"], row["metric"], row["dataset"])
                if key_ in latest:
                    result.notes.append(f"{task} {key}: {path.name} replaces {latest[key_][1]}")
                latest[key_] = (row, path.name)
    result.rows = [row for row, _ in latest.values()]
    if not result.rows:
        raise ImportFailed(f"{label or paths[0]}: no metric values in the results")
    return result
