"""Weight files that are something else, and evaluation files in another dialect (issue #20, branch weights)."""

from __future__ import annotations

from tests.errors.framework import Ctx, ErrorCase

# What a download that failed with an error page leaves behind under the checkpoint's name.
ERROR_PAGE = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>try again</body></html>\n"
EMPTY_SAFETENSORS = len(b'{"__metadata__":{"format":"pt"}}').to_bytes(8, "little") + b'{"__metadata__":{"format":"pt"}}'
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 90387606\n"


def model_folder(ctx: Ctx, name: str, data: bytes) -> list[str]:
    (ctx.root / "model").mkdir()
    (ctx.root / "model" / name).write_bytes(data)
    return ["analyze", "model"]


def evals_file(ctx: Ctx, text: str) -> list[str]:
    (ctx.root / "top1.csv").write_text(text)
    return ["evals", "import", "top1.csv", "--lake", str(ctx.lake)]


CASES = [
    ErrorCase(
        "pickle-is-an-html-page",
        "`wwhub analyze DIR` whose `pytorch_model.bin` is an HTML page (a failed download)",
        2,
        "wwhub analyze: error: model/pytorch_model.bin: an HTML page, not a checkpoint (a failed download? "
        "download it again)",
        lambda ctx: model_folder(ctx, "pytorch_model.bin", ERROR_PAGE),
    ),
    ErrorCase(
        "safetensors-is-an-lfs-pointer",
        "`wwhub analyze DIR` whose `model.safetensors` is a Git LFS pointer (cloned without `git lfs`)",
        2,
        "wwhub analyze: error: model/model.safetensors: a Git LFS pointer, not the weights (fetch them: git lfs pull)",
        lambda ctx: model_folder(ctx, "model.safetensors", LFS_POINTER),
    ),
    ErrorCase(
        "safetensors-index-not-utf8",
        "`wwhub analyze DIR` whose `model.safetensors.index.json` is not UTF-8 text",
        2,
        "wwhub analyze: error: model/model.safetensors.index.json: unreadable index ('utf-8' codec can't decode byte "
        "0xff in position 0: invalid start byte)",
        lambda ctx: model_folder(ctx, "model.safetensors.index.json", b"\xff\xfe\x00garbage"),
    ),
    ErrorCase(
        "config-field-of-the-wrong-type",
        "`wwhub analyze DIR` whose `config.json` gives `quantization_config.bits` as text",
        2,
        "wwhub analyze: error: model/config.json: quantization_config.bits is 'four', expected an integer",
        lambda ctx: model_folder(
            ctx, "config.json", b'{"quantization_config": {"quant_method": "gptq", "bits": "four"}}'
        ),
    ),
    ErrorCase(
        "safetensors-without-tensors",
        "`wwhub analyze DIR` whose `model.safetensors` holds only `__metadata__` (no tensor)",
        2,
        "wwhub analyze: error: model: no weight matrices found: it stores no tensors",
        lambda ctx: model_folder(ctx, "model.safetensors", EMPTY_SAFETENSORS),
    ),
    ErrorCase(
        "evals-csv-unknown-separator",
        "`wwhub evals import` of a file whose columns are separated by `|` (commas, semicolons and tabs are read)",
        2,
        "wwhub evals: error: top1.csv: missing column(s) repo_id, metric, value; need repo_id, metric, value in the "
        "first line, separated by commas, semicolons or tabs",
        lambda ctx: evals_file(ctx, "repo_id|metric|value\nacme/tiny-1m|accuracy|0.5\n"),
    ),
]
