"""weightwatcher's options on the command line: per-layer figures, the base model, xmax (issue #19, branch ww)."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import save_file

from tests.errors.framework import Ctx, ErrorCase


def model_file(ctx: Ctx) -> str:
    save_file({"w.weight": np.random.default_rng(1).standard_t(3, (60, 30)).astype(np.float32)}, "model.safetensors")
    return "model.safetensors"


def plot_into_a_file(ctx: Ctx) -> list[str]:
    (ctx.root / "figures.png").write_text("not a folder")
    return ["analyze", model_file(ctx), "--plot", "figures.png"]


CASES = [
    ErrorCase(
        "analyze-plot-into-a-file",
        "`wwhub analyze --plot DIR` where DIR is a file",
        2,
        "wwhub analyze: error: --plot figures.png: is a file, expected a folder",
        plot_into_a_file,
    ),
    ErrorCase(
        "analyze-base-model-missing",
        "`wwhub analyze --base-model BASE` where BASE does not exist",
        2,
        "wwhub analyze: error: --base-model nowhere: no such file or folder",
        lambda ctx: ["analyze", model_file(ctx), "--base-model", "nowhere"],
    ),
    ErrorCase(
        "analyze-xmax-zero",
        "`--xmax 0` (the number of top eigenvalues to leave out of the fit)",
        2,
        "wwhub analyze: error: argument --xmax: expected 'force' or a nonzero whole number, got 0 "
        "(usage: wwhub analyze --help)",
        lambda ctx: ["analyze", "model.safetensors", "--xmax", "0"],
    ),
]
