"""Source adapters: family inference, card parsing, local fingerprints."""

import numpy as np
import pytest

from flows.sources import LocalSource, infer_family, parse_card
from tests.fakehub import model_index, write_model


@pytest.mark.parametrize(
    ("repo_id", "family"),
    [
        ("EleutherAI/pythia-160m", "pythia"),
        ("EleutherAI/pythia-1.4b-deduped", "pythia"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5"),
        ("openai-community/gpt2", "gpt2"),
        ("google-bert/bert-base-uncased", "bert-base-uncased"),
        ("meta-llama/Llama-3.2-1B", "llama-3.2"),
    ],
)
def test_family_is_inferred_from_the_name(repo_id, family):
    assert infer_family(repo_id) == family


def test_card_parsing_ok_missing_and_malformed():
    text = (
        "---\nlibrary_name: pytorch\nbase_model: org/base\n"
        + "model-index:\n"
        + "\n".join("  " + line for line in __import__("yaml").safe_dump(model_index("m", 0.91)).splitlines())
        + "\n---\n# card\n"
    )
    status, facts, evals = parse_card(text)
    assert status == "ok" and facts["base_model"] == "org/base" and facts["library_name"] == "pytorch"
    assert [(e.metric, e.value, e.split, e.source) for e in evals] == [("accuracy", 0.91, "test", "model-index")]
    assert parse_card(None) == ("missing", {}, [])
    status, facts, evals = parse_card("---\nmodel-index: [unclosed\n---\n")
    assert status.startswith("malformed") and evals == []


def test_local_source_fingerprint_changes_with_the_files(tmp_path):
    folder = write_model(tmp_path / "root" / "org" / "m-1m", {"w.weight": np.ones((20, 10), np.float32)})
    source = LocalSource(tmp_path / "root")
    first = source.list_family({}, None)[0]
    assert (first.repo_id, first.family) == ("org/m-1m", "m")
    assert source.list_family({}, None)[0].revision == first.revision
    write_model(folder, {"w.weight": np.zeros((20, 10), np.float32)})
    assert source.list_family({}, None)[0].revision != first.revision


@pytest.mark.parametrize(
    ("metadata", "ignored"),
    [
        ("library_name: 5", "library_name (int, not text)"),
        ("library_name: {a: 1}", "library_name (dict, not text)"),
        ("library_name: 2024-01-01", "library_name (date, not text)"),
        ("pipeline_tag: [a, b]", "pipeline_tag (list, not text)"),
        ("base_model: [1, 2]", "base_model (list, not text)"),
    ],
)
def test_a_card_field_that_is_not_text_is_ignored_and_said(metadata, ignored):
    status, facts, _ = parse_card(f"---\n{metadata}\nlicense: mit\n---\n# card\n")
    assert status == f"ignored {ignored}"
    assert all(value is None for value in facts.values())


def test_base_model_lists_keep_the_first_model_as_the_hub_reads_them():
    status, facts, _ = parse_card("---\nbase_model: [org/a, org/b]\nlibrary_name: transformers\n---\n")
    assert status == "ok" and facts["base_model"] == "org/a" and facts["library_name"] == "transformers"
