"""The metric vocabulary: one name per reported metric, its range, its direction, and how values are checked.

Sources spell the same metric many ways (``acc``, ``Accuracy``, ``top-1``; lm-evaluation-harness's ``acc,none``);
a correlation needs one name. ``normalize_metric`` maps a raw name to the vocabulary below (docs/correlations.md
shows the same table); a name outside it keeps its spelling, lower-cased with ``_`` for spaces and ``-``,
and ``acc`` tokens read as ``accuracy`` (``prompt_level_strict_acc`` → ``prompt_level_strict_accuracy``).

Scales: a proportion (accuracy, F1, ...) is reported either as a fraction (0.95) or in percent (95). Each stored
value keeps the scale it was reported in (``evals.scale``); views divide percentages by 100, so one correlation
never mixes the two.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SCALE_PERCENT = "percent"
SCALE_FRACTION = "fraction"
SCALES = (SCALE_PERCENT, SCALE_FRACTION)

# Kinds: the range a value must lie in.
PROPORTION = "proportion"  # [0, 1] as a fraction, [0, 100] in percent
SIGNED = "signed"  # [-1, 1] (or [-100, 100] in percent): correlation-type scores
NON_NEGATIVE = "non-negative"  # [0, inf): perplexity, loss, error counts
SCORE = "score"  # any finite number


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    higher_is_better: bool
    aliases: tuple[str, ...] = ()
    description: str = ""


VOCABULARY: tuple[Metric, ...] = (
    Metric("accuracy", PROPORTION, True, ("acc", "top1", "top_1", "top1_accuracy", "top_1_accuracy"), "share correct"),
    Metric("accuracy_norm", PROPORTION, True, ("acc_norm", "normalized_accuracy"), "lm-eval length-normalised"),
    Metric("top5_accuracy", PROPORTION, True, ("top5", "top_5", "top_5_accuracy"), "true class in the top five"),
    Metric("exact_match", PROPORTION, True, ("em",), "answer string identical"),
    Metric("f1", PROPORTION, True, ("f1_score", "f_1"), "F1 score"),
    Metric("precision", PROPORTION, True, (), ""),
    Metric("recall", PROPORTION, True, (), ""),
    Metric("bleu", PROPORTION, True, ("sacrebleu",), "BLEU (lm-eval reports it in percent)"),
    Metric("chrf", PROPORTION, True, (), "chrF (lm-eval reports it in percent)"),
    Metric("rouge1", PROPORTION, True, ("rouge_1",), ""),
    Metric("rouge2", PROPORTION, True, ("rouge_2",), ""),
    Metric("rougel", PROPORTION, True, ("rouge_l",), ""),
    Metric("mc1", PROPORTION, True, (), "TruthfulQA single-true"),
    Metric("mc2", PROPORTION, True, (), "TruthfulQA multi-true"),
    Metric("strict_accuracy", PROPORTION, True, (), "IFEval strict (prompt and instruction level)"),
    Metric("matthews_correlation", SIGNED, True, ("mcc", "matthews_corrcoef"), "Matthews correlation"),
    Metric("pearson", SIGNED, True, ("pearsonr",), "STS-B-style Pearson r"),
    Metric("spearman", SIGNED, True, ("spearmanr",), "STS-B-style Spearman rho"),
    Metric("normalized_score", SCORE, True, (), "Open LLM Leaderboard score (random baseline = 0), percent"),
    Metric("error_rate", PROPORTION, False, ("error", "top1_error", "err"), "share wrong"),
    Metric("wer", NON_NEGATIVE, False, ("word_error_rate",), "word error rate (may exceed 1)"),
    Metric("cer", NON_NEGATIVE, False, ("character_error_rate",), "character error rate"),
    Metric("perplexity", NON_NEGATIVE, False, ("ppl",), ""),
    Metric("word_perplexity", NON_NEGATIVE, False, (), ""),
    Metric("byte_perplexity", NON_NEGATIVE, False, (), ""),
    Metric("bits_per_byte", NON_NEGATIVE, False, (), ""),
    Metric("loss", NON_NEGATIVE, False, ("eval_loss", "test_loss"), ""),
)
_BY_NAME = {m.name: m for m in VOCABULARY}
_ALIASES = {alias: m.name for m in VOCABULARY for alias in (m.name, *m.aliases)}
# The same rule as queries/reported_values.sql's higher_is_better (tested to agree on the vocabulary).
_LOWER_IS_BETTER = re.compile(r"error|loss|perplexity|ppl|wer|cer|mse|mae|rmse|bits_per_byte")
# A number written as text: ASCII digits, at most one '.', an exponent. float() also reads Python-only spellings
# ('1_0' as 10, other scripts' digits) that no other tool reading the same file would agree with.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class EvalValueError(ValueError):
    """A reported value that cannot be stored: not a number, not finite, or outside its metric's range."""


def _spelling(raw: str) -> str:
    return re.sub(r"[\s\-]+", "_", raw.strip().lower())


def normalize_metric(raw: str) -> str:
    """The vocabulary name of a raw metric name (``Top-1 Accuracy`` → ``accuracy``, ``acc_norm`` →
    ``accuracy_norm``); unknown names keep their lower-cased spelling with ``acc`` tokens read as ``accuracy``."""
    spelling = _spelling(raw)
    if spelling in _ALIASES:
        return _ALIASES[spelling]
    for prefix in ("test_", "eval_", "validation_", "val_"):
        if spelling.startswith(prefix) and spelling[len(prefix) :] in _ALIASES:
            return _ALIASES[spelling[len(prefix) :]]
    return "_".join("accuracy" if token == "acc" else token for token in spelling.split("_"))


def metric_info(name: str) -> Metric:
    """The vocabulary entry of a normalised name; names outside it are scores, direction guessed from the name."""
    return _BY_NAME.get(name) or Metric(name, SCORE, not _LOWER_IS_BETTER.search(name))


def is_proportion(metric: str) -> bool:
    """True for metrics reported as a fraction or in percent (proportions and correlation-type scores)."""
    return metric_info(metric).kind in (PROPORTION, SIGNED)


def parse_value(raw) -> tuple[float, str | None]:
    """(number, scale read from the text) of a reported value: ``0.95`` → (0.95, None), ``"95%"`` → (95.0,
    "percent"). Rejects, with a message saying why, anything that is not a finite number (``NaN``, ``inf``,
    ``1e309``, booleans, empty) and text that is not a plain decimal (``1_0``)."""
    scale = None
    if isinstance(raw, bool) or raw is None:
        raise EvalValueError("not a number")
    if isinstance(raw, str):
        text = raw.strip()
        if text.endswith("%"):
            text, scale = text[:-1].strip(), SCALE_PERCENT
        try:
            value = float(text)
        except ValueError:
            raise EvalValueError("not a number") from None
        if math.isfinite(value) and not _DECIMAL.fullmatch(text):
            raise EvalValueError("not a plain decimal number (digits 0-9, an optional '.' and exponent; no '_')")
    else:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise EvalValueError("not a number") from None
    if not math.isfinite(value):
        raise EvalValueError("not a finite number")
    return value, scale


def detect_scale(metric: str, values: list[float]) -> str | None:
    """The scale of one source's values of one metric: percent when any exceeds 1 in magnitude, else fraction;
    None for metrics that are not proportions. Values on both sides of 1 are ambiguous (0.95 next to 95) and
    raise: the caller should say which scale (a ``scale`` column, ``--scale``)."""
    if not is_proportion(metric) or not values:
        return None
    above = [v for v in values if abs(v) > 1]
    if not above:
        return SCALE_FRACTION
    below = [v for v in values if abs(v) <= 1 and v != 0]
    if below:
        raise EvalValueError(
            f"{metric}: values on both scales ({below[0]:g} and {above[0]:g}): percent or fraction? "
            "Give a scale column (percent|fraction) or --scale"
        )
    return SCALE_PERCENT


def check_value(metric: str, value: float, scale: str | None) -> None:
    """Raise when ``value`` is outside the range of ``metric`` on ``scale`` (e.g. a negative accuracy, 120%)."""
    kind = metric_info(metric).kind
    top = 100.0 if scale == SCALE_PERCENT else 1.0
    if kind == PROPORTION and not 0 <= value <= top:
        raise EvalValueError(f"outside [0, {top:g}] for a {kind} on the {scale or SCALE_FRACTION} scale")
    if kind == SIGNED and not -top <= value <= top:
        raise EvalValueError(f"outside [-{top:g}, {top:g}] on the {scale or SCALE_FRACTION} scale")
    if kind == NON_NEGATIVE and value < 0:
        raise EvalValueError("negative")


def check_row(metric: str, value: float, scale: str | None, stderr: float | None, n_shot: int | None) -> None:
    """Raise, naming the column, when a parsed evals row cannot be stored: a value that is not finite or is outside
    ``metric``'s range on its scale (``check_value``; no scale reads as a fraction); a scale other than percent or
    fraction; a stderr that is not a finite non-negative number; a negative n_shot. Every ``wwhub evals import``
    reader (flows/evals/importers.py: ``_row``) and ``wwhub lake import`` check their rows with this, so what one
    stores the other accepts."""
    if scale is not None and scale not in SCALES:
        raise EvalValueError(f"scale {scale!r}: expected percent or fraction")
    try:
        parse_value(value)
        check_value(metric, value, scale)
    except EvalValueError as err:
        raise EvalValueError(f"{metric} {value!r}: {err}") from None
    if stderr is not None and not (math.isfinite(stderr) and stderr >= 0):
        raise EvalValueError(f"stderr {stderr!r}: not a finite non-negative number")
    if n_shot is not None and n_shot < 0:
        raise EvalValueError(f"n_shot {n_shot}: negative")


def single_value(metric: str, raw) -> tuple[float, str | None]:
    """Parse and check one value seen alone (a model card's entry): its scale from a ``%`` sign, else percent for
    a proportion above 1, else fraction. Raises EvalValueError saying ``METRIC 'RAW': why``."""
    try:
        return _single_value(metric, raw)
    except EvalValueError as err:
        raise EvalValueError(f"{metric} {raw!r}: {err}") from None


def _single_value(metric: str, raw) -> tuple[float, str | None]:
    value, scale = parse_value(raw)
    if scale is None:
        scale = detect_scale(metric, [value])
    elif not is_proportion(metric):
        raise EvalValueError(f"a percentage, but {metric} is not a proportion")
    check_value(metric, value, scale)
    return value, scale
