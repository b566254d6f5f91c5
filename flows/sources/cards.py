"""Model cards: metadata facts and ``model-index`` evaluation results from a README.md."""

from __future__ import annotations

from .base import EvalResult


def parse_card(text: str | None) -> tuple[str, dict, list[EvalResult]]:
    """(card_status, metadata facts, model-index eval results) of a README.md. Never raises."""
    if text is None:
        return "missing", {}, []
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(text, ignore_metadata_errors=False)
        data = card.data
    except Exception as err:  # noqa: BLE001 - any parse failure of user-written YAML is "malformed"
        return f"malformed: {err.__class__.__name__}: {str(err).splitlines()[0][:200]}", {}, []
    facts = {
        "library_name": getattr(data, "library_name", None),
        "pipeline_tag": getattr(data, "pipeline_tag", None),
        "base_model": _first(getattr(data, "base_model", None)),
    }
    evals = []
    for result in getattr(data, "eval_results", None) or []:
        try:
            value = float(result.metric_value)
        except (TypeError, ValueError):
            continue
        evals.append(
            EvalResult(
                source="model-index",
                task=str(result.task_type or ""),
                dataset=str(result.dataset_name or result.dataset_type or ""),
                split=str(result.dataset_split or ""),
                metric=str(result.metric_type or result.metric_name or ""),
                value=value,
            )
        )
    return "ok", facts, evals


def _first(value):
    if isinstance(value, list | tuple):
        return value[0] if value else None
    return value
