"""Which files of a repo hold its weights: one decision, from the file list alone, for every source.

:func:`weight_layout` takes a repo's files (paths relative to the repo, with their sizes) and the options that
change the choice (``allow_pickle``, ``gguf_file``) and says what to read; it reads nothing. The hub (file list from
``model_info``), a local folder and the Hugging Face cache (file list from the disk) all plan through it, then read
the index and headers it names in their own way (:func:`flows.weights.plan.plan_layout`). In order:

1. ``adapter_config.json``: a PEFT adapter, its ``adapter_model.safetensors``, else its ``adapter_model.bin``;
2. ``model.safetensors.index.json``: the safetensors shards it names, in its order;
3. top-level ``*.safetensors`` files, by name;
4. ``pytorch_model.bin`` or ``pytorch_model-0000N-of-0000M.bin`` pickles (in the order of
   ``pytorch_model.bin.index.json`` when present), only when pickles are allowed;
5. one GGUF file (``--gguf-file``, or :func:`choose_gguf_file`'s pick).

Pickles are never chosen when ``allow_pickle`` is false: a repo whose weights are only pickles is then
:class:`UnsupportedWeights` with a reason naming them (the scan records it as ``unsupported``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from .decoders.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from .errors import UnsupportedWeights, WeightsError

SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"
SAFETENSORS_SUFFIX = ".safetensors"
GGUF_SUFFIX = ".gguf"
# The names transformers writes pickled checkpoints under (save_pretrained with safe_serialization=False).
_PICKLE_CHECKPOINT = re.compile(r"pytorch_model(-\d+-of-\d+)?\.bin")
_SPLIT_GGUF = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)


@dataclass(frozen=True)
class WeightLayout:
    """The files to read: ``fmt`` (safetensors, pickle or gguf), the weight ``files`` in name order (with an
    ``index``, the index names the shards and their order), whether they are a PEFT ``adapter``'s, and a ``note``
    for the user (which GGUF file was picked)."""

    fmt: str
    files: tuple[str, ...]
    index: str | None = None
    adapter: bool = False
    note: str = ""


def weight_layout(
    files: Mapping[str, int | None], *, allow_pickle: bool = True, gguf_file: str | None = None, label: str = ""
) -> WeightLayout:
    """The weight files of a repo whose files are ``files`` (relative path → size in bytes, None when unknown).

    Raises :class:`UnsupportedWeights` when the only weights are pickles and ``allow_pickle`` is false, and
    :class:`WeightsError` naming ``label`` when the repo has no weights wwhub reads (or ``gguf_file`` is not one of
    its GGUF files)."""
    if ADAPTER_CONFIG in files:
        return _adapter_layout(files, allow_pickle, label)
    top_safetensors = tuple(sorted(f for f in files if f.endswith(SAFETENSORS_SUFFIX) and "/" not in f))
    if SAFETENSORS_INDEX in files:
        return WeightLayout("safetensors", top_safetensors, index=SAFETENSORS_INDEX)
    if top_safetensors:
        return WeightLayout("safetensors", top_safetensors)
    pickles = tuple(sorted(f for f in files if _PICKLE_CHECKPOINT.fullmatch(f)))
    if pickles:
        if not allow_pickle:
            raise UnsupportedWeights(
                f"{label}: only pickled weights ({', '.join(pickles[:3])}), and --no-pickle forbids loading pickles"
            )
        return WeightLayout("pickle", pickles, index=PICKLE_INDEX if PICKLE_INDEX in files else None)
    ggufs = {f: size for f, size in files.items() if f.lower().endswith(GGUF_SUFFIX)}
    if ggufs:
        chosen = choose_gguf_file(ggufs, gguf_file)
        note = f"analyzed {chosen} ({'chosen' if gguf_file else 'picked'} among {len(ggufs)} GGUF files)"
        return WeightLayout("gguf", (chosen,), note=note)
    raise WeightsError(f"{label}: no *.safetensors, pytorch_model*.bin or *.gguf weights")


def _adapter_layout(files: Mapping[str, int | None], allow_pickle: bool, label: str) -> WeightLayout:
    safetensors, pickle = ADAPTER_WEIGHTS
    if safetensors in files:
        return WeightLayout("safetensors", (safetensors,), adapter=True)
    if pickle in files:
        if not allow_pickle:
            raise UnsupportedWeights(f"{label}: only a pickled {pickle}, and --no-pickle forbids loading pickles")
        return WeightLayout("pickle", (pickle,), adapter=True)
    raise WeightsError(f"{label}: {ADAPTER_CONFIG} but no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")


def gguf_precision_bits(filename: str) -> int | None:
    """Bits per weight that a GGUF file name announces (``model-Q4_K_M.gguf`` → 4, ``f16`` → 16), or None."""
    stem = PurePosixPath(filename).name
    match = re.search(r"(?i)(?:^|[-_.])(I?Q|TQ)(\d)_", stem)
    if match:
        return int(match.group(2))
    match = re.search(r"(?i)(?:^|[-_.])(MXFP4|BF16|F16|FP16|F32|FP32)(?=[-_.])", stem)
    if match:
        return {"MXFP4": 4, "BF16": 16, "F16": 16, "FP16": 16, "F32": 32, "FP32": 32}[match.group(1).upper()]
    return None


def choose_gguf_file(files: Mapping[str, int | None], override: str | None = None) -> str:
    """The GGUF file a GGUF-only repo is analyzed from: ``override`` when given, else the largest file whose
    name announces a precision of at most 8 bits, leaving out split files (``-00001-of-00003.gguf``) and
    multimodal projectors (``mmproj``). ``files`` maps repo paths to sizes in bytes (None when unknown)."""
    ggufs = {f: s for f, s in files.items() if f.lower().endswith(GGUF_SUFFIX)}
    if override is not None:
        if override not in ggufs:
            raise WeightsError(f"--gguf-file {override}: not among this repo's GGUF files ({', '.join(ggufs)})")
        if _SPLIT_GGUF.search(override):
            raise WeightsError(f"--gguf-file {override}: one part of a split GGUF model cannot be analyzed alone")
        return override
    candidates = [
        f
        for f in ggufs
        if not _SPLIT_GGUF.search(f)
        and "mmproj" not in PurePosixPath(f).name.lower()
        and (bits := gguf_precision_bits(f)) is not None
        and bits <= 8
    ]
    if not candidates:
        listed = ", ".join(ggufs) or "none"
        raise WeightsError(f"no single-file GGUF of at most 8 bits to analyze (GGUF files: {listed}); pick one")
    return max(candidates, key=lambda f: (ggufs[f] or 0, gguf_precision_bits(f) or 0, f))
