"""A card's metadata is read as huggingface_hub's ModelCard reads it, without importing the hub client for it."""

import json
import random
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import REGEX_YAML_BLOCK

from flows.sources import parse_card
from flows.sources.cards import METADATA_BLOCK, card_data

MODEL_INDEX = """model-index:
- name: m
  results:
  - task: {type: text-classification}
    dataset: {name: glue, type: glue, split: validation}
    metrics:
    - {type: accuracy, value: 0.91}
"""

CARDS = [
    f"---\n{MODEL_INDEX}---\n# m\n",
    f"---\r\n{MODEL_INDEX.replace(chr(10), chr(13) + chr(10))}---\r\nbody",
    f"---\r{MODEL_INDEX.replace(chr(10), chr(13))}---\rbody",
    f"\n\n  ---\n{MODEL_INDEX}---  \t\nbody",
    f"---\n{MODEL_INDEX}---",
    "---\nlicense: mit\ntags: [a, b]\nbase_model: [org/x, org/y]\n---\ntext\n---\nmore: 1\n---\n",
    "# no metadata\n---\nlicense: mit\n---\n",
    "no metadata at all",
    "",
    "---\n---\n",
    "---\n\n---\n",
    "---\nnull\n---\n",
    "---\n- a\n- b\n---\n",
    "---\n0\n---\n",
    "---\nlicense: mit\n---x\n",
    "---\nlicense: mit\n--- \r\n",
    "---\nmodel-index: 3\n---\n",
    "---\nmodel-index:\n- name: m\n  results:\n  - metrics: [{type: accuracy, value: 1}]\n---\n",
]


def metadata_or_error(read, text: str):
    """``read(text)``'s metadata as a dict, or its failure as (type, message)."""
    try:
        return read(text).to_dict()
    except Exception as err:  # noqa: BLE001 - the failure itself is what is compared
        return (type(err), str(err))


def matched(pattern, text: str, block_group: int):
    found = pattern.search(text)
    return None if found is None else (found.group(block_group), found.end())


@pytest.mark.parametrize("text", CARDS)
def test_the_metadata_and_its_errors_are_modelcards(text):
    assert matched(METADATA_BLOCK, text, 1) == matched(REGEX_YAML_BLOCK, text, 2)
    by_huggingface_hub = metadata_or_error(lambda t: ModelCard(t, ignore_metadata_errors=False).data, text)
    assert metadata_or_error(card_data, text) == by_huggingface_hub


def test_the_block_is_found_where_huggingface_hub_finds_it_in_random_texts():
    pieces = ["---", "--", "-", "\n", "\r\n", "\r", " ", "\t", "a: 1", "x", "- b", "#"]
    rng = random.Random(0)
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert matched(METADATA_BLOCK, text, 1) == matched(REGEX_YAML_BLOCK, text, 2), repr(text)


def test_the_eval_results_are_the_hubs_reading_of_model_index():
    status, facts, evals = parse_card(CARDS[0])
    assert status == "ok" and facts == {"library_name": None, "pipeline_tag": None, "base_model": None}
    assert [(e.task, e.dataset, e.split, e.metric, e.value) for e in evals] == [
        ("text-classification", "glue", "validation", "accuracy", 0.91)
    ]
    status, _, evals = parse_card("---\n- a\n---\n")
    assert status == "malformed: ValueError: repo card metadata block should be a dict" and evals == []


def test_reading_a_card_does_not_import_the_hub_client():
    script = f"import sys, json\nfrom flows.sources import parse_card\nparse_card({CARDS[0]!r})\n"
    script += "print(json.dumps(sorted(sys.modules)))"
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    modules = set(json.loads(ran.stdout))
    assert "huggingface_hub.repocard_data" in modules
    assert sorted(m for m in modules if m in ("huggingface_hub.hf_api", "huggingface_hub.file_download")) == []
