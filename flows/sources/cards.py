"""Model cards: metadata facts and ``model-index`` evaluation results from a README.md.

A card is written by anyone: its size is bounded and its YAML may not use anchors or aliases (a "billion laughs"
card expands a few hundred bytes into billions of nodes once walked), so nothing in it can exhaust memory or time.
"""

from __future__ import annotations

import re

import yaml

from ..evals.vocabulary import EvalValueError, normalize_metric, single_value
from .base import EvalResult

# The Hub's largest real cards are a few hundred KB; the metadata block is a small part of them.
MAX_CARD_BYTES = 2_000_000
MAX_CARD_YAML_BYTES = 512_000
# Real metadata nests a few levels (model-index → results → metrics → item); parsing YAML nested thousands deep
# takes PyYAML and ModelCard minutes of CPU within the size cap.
MAX_CARD_YAML_DEPTH = 64
# The card's metadata the lake keeps, as text, in each models row.
TEXT_FACTS = ("library_name", "pipeline_tag", "base_model")
# The metadata block where huggingface_hub's RepoCard finds it (a test holds the two to the same matches): at the
# start, after blank space, between a line "---" and a line "---" that may end in blanks. Matched here rather than
# through huggingface_hub.repocard, whose import brings the hub client (hf_api, file_download: ~0.1 s of a local
# scan's start-up) that reading a card does not need.
METADATA_BLOCK = re.compile(r"^\s*---(?:\r\n|\r|\n)(.*?)(?:\r\n|\r|\n)---[ \t]*(?:\r\n|\n|$)", re.DOTALL)


def parse_card(text: str | None) -> tuple[str, dict, list[EvalResult]]:
    """(card_status, metadata facts, model-index eval results) of a README.md. Never raises."""
    if text is None:
        return "missing", {}, []
    unsafe = card_yaml_problem(text)
    if unsafe:
        return f"malformed: {unsafe}", {}, []
    try:
        data = card_data(text)
    except Exception as err:  # noqa: BLE001 - any parse failure of user-written YAML is "malformed"
        return f"malformed: {err.__class__.__name__}: {str(err).splitlines()[0][:200]}", {}, []
    facts, ignored = {}, []
    for name in TEXT_FACTS:
        facts[name], problem = text_fact(name, getattr(data, name, None))
        if problem:
            ignored.append(problem)
    evals, rejected = [], []
    for result in getattr(data, "eval_results", None) or []:
        raw_metric = str(result.metric_type or result.metric_name or "")
        metric = normalize_metric(raw_metric)
        try:
            value, scale = single_value(metric, result.metric_value)
        except EvalValueError as err:
            rejected.append(str(err))
            continue
        evals.append(
            EvalResult(
                source="model-index",
                task=str(result.task_type or ""),
                dataset=str(result.dataset_name or result.dataset_type or ""),
                split=str(result.dataset_split or ""),
                metric=metric,
                value=value,
                scale=scale,
                n_shot=_n_shot(getattr(result, "dataset_args", None)),
                raw_metric=raw_metric,
            )
        )
    # A value we cannot store is said, never dropped silently: the scan records it in the model's reason.
    problems = [f"ignored {', '.join(ignored)}"] if ignored else []
    if rejected:
        problems.append("invalid model-index values: " + "; ".join(rejected))
    return "; ".join(problems) or "ok", facts, evals


def text_fact(name: str, value) -> tuple[str | None, str | None]:
    """A card field the lake keeps as text: (the text, None), or (None, why it was ignored) when the YAML holds a
    number, a date, a list or a mapping there. ``base_model`` may name several models (a merge's), as the Hub reads
    it: the first is kept."""
    if name == "base_model" and isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        value = value[0] if value else None
    if value is None or isinstance(value, str):
        return value, None
    return None, f"{name} ({type(value).__name__}, not text)"


def _n_shot(args) -> int | None:
    """``num_few_shot`` from a model-index dataset's ``args`` (how the Open LLM Leaderboard bot writes it)."""
    value = args.get("num_few_shot") if isinstance(args, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def card_data(text: str):
    """The card's metadata as huggingface_hub's ``ModelCard(text, ignore_metadata_errors=False).data`` reads it (a
    ``ModelCardData``: its ``eval_results`` are the Hub's reading of ``model-index``), and with its errors: a
    metadata block that is not a mapping is a ValueError. No block: empty metadata. Check ``card_yaml_problem``
    first: this builds the YAML document."""
    from huggingface_hub.repocard_data import ModelCardData

    match = METADATA_BLOCK.search(text)
    metadata = yaml.safe_load(match.group(1)) if match else None
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise ValueError("repo card metadata block should be a dict")
    return ModelCardData(**metadata, ignore_metadata_errors=False)


def card_yaml_problem(text: str) -> str | None:
    """Why a card's metadata may not be parsed (too large, aliases, anchors, nested too deep), or None. Reads YAML
    events only: nothing is built from the document."""
    if len(text) > MAX_CARD_BYTES:
        return f"card of {len(text)} characters, more than {MAX_CARD_BYTES}"
    match = METADATA_BLOCK.search(text)
    if match is None:
        return None
    block = match.group(1)
    if len(block) > MAX_CARD_YAML_BYTES:
        return f"metadata block of {len(block)} characters, more than {MAX_CARD_YAML_BYTES}"
    depth = 0
    try:
        for event in yaml.parse(block, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                return "YAML anchors and aliases are not accepted in card metadata"
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_CARD_YAML_DEPTH:
                    return f"metadata nested more than {MAX_CARD_YAML_DEPTH} levels deep"
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as err:
        return f"invalid YAML ({str(err).splitlines()[0][:200]})"
    return None
