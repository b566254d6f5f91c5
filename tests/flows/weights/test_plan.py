"""config.json as the plan reads it: the fields decoders compute with are checked once, naming the file and field."""

from __future__ import annotations

import json

import pytest

from flows.weights import WeightsError, parse_model_config

LABEL = "acme/m/config.json"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"quantization_config": "fp8"}, "quantization_config is 'fp8', expected a JSON object"),
        ({"quantization_config": True}, "quantization_config is True, expected a JSON object"),
        ({"ffn_config": [1]}, "ffn_config is [1], expected a JSON object"),
        ({"ffn_config": {"moe_num_experts": "16"}}, "ffn_config.moe_num_experts is '16', expected a positive integer"),
        ({"quantization_config": {"quant_method": 8}}, "quantization_config.quant_method is 8, expected text"),
        ({"quantization_config": {"bits": "four"}}, "quantization_config.bits is 'four', expected an integer"),
        ({"quantization_config": {"group_size": True}}, "quantization_config.group_size is True, expected an integer"),
        (
            {"quantization_config": {"weight_block_size": [0, 0]}},
            "quantization_config.weight_block_size is [0, 0], expected [rows, columns] of positive integers",
        ),
        (
            {"quantization_config": {"weight_block_size": [None, 1]}},
            "quantization_config.weight_block_size is [None, 1], expected [rows, columns] of positive integers",
        ),
        ({"quantization_config": {"config_groups": [1]}}, "quantization_config.config_groups is [1], expected a JSON"),
        (
            {"quantization_config": {"config_groups": {"group_0": {"weights": {"num_bits": 4.5}}}}},
            "quantization_config.config_groups.group_0.weights.num_bits is 4.5, expected an integer",
        ),
        (
            {"quantization_config": {"config_groups": {"group_0": {"targets": "Linear"}}}},
            "quantization_config.config_groups.group_0.targets is 'Linear', expected a list of text",
        ),
        (
            {"quantization_config": {"ignore": ["lm_head", 3]}},
            "quantization_config.ignore is ['lm_head', 3], expected a list of text",
        ),
    ],
)
def test_a_wrongly_typed_field_is_one_line_naming_the_file_and_the_field(config, message):
    """Each of these once reached a decoder: AttributeError, TypeError or ZeroDivisionError, exit 70."""
    with pytest.raises(WeightsError) as caught:
        parse_model_config(json.dumps(config), LABEL)
    assert str(caught.value).startswith(f"{LABEL}: {message}")


def test_the_configs_quantized_checkpoints_ship_are_accepted():
    configs = [
        {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": True}},
        {"quantization_config": {"quant_method": "awq", "w_bit": 4, "q_group_size": 128, "version": "GEMM"}},
        {"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}},
        {"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}},
        {
            "quantization_config": {
                "quant_method": "compressed-tensors",
                "config_groups": {"group_0": {"weights": {"num_bits": 8, "block_structure": [128, 128]}}},
            }
        },
        {"quantization_config": None, "ffn_config": {"moe_num_experts": 16}, "model_type": "dbrx"},
    ]
    for config in configs:
        assert parse_model_config(json.dumps(config), LABEL) == config
