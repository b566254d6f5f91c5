"""`wwhub analyze --plot DIR` and ``WeightWatcher(...).analyze(plot=True, savefig=DIR)``: one set of figures per
layer, named by model and layer, and the fitted power law really drawn (a pixel check on the PNG)."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import save_file

import ww_core
from flows.analysis.layer_plots import FIT_COLOR, write_layer_plots
from flows.cli import main


def heavy(n, m, seed):
    return (np.random.default_rng(seed).standard_t(3, size=(n, m)) / np.sqrt(n)).astype(np.float32)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_file({"a.weight": heavy(300, 120, 1), "b.weight": heavy(200, 100, 2), "b.bias": np.zeros(200, "f4")}, path)
    return path


def fit_colored_pixels(path) -> int:
    """Pixels within a small distance of the power-law line's color (anti-aliasing blends only its edges)."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.int32)
    target = np.array([int(FIT_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    return int(np.count_nonzero(np.abs(rgb - target).sum(axis=2) < 30))


def test_plot_writes_every_figure_of_every_layer(model_file, tmp_path, capsys):
    out = tmp_path / "figures"
    argv = ["analyze", str(model_file), "--plot", str(out), "--randomize", "--mp-fit", "--detX", "--vectors"]
    code = main([*argv, "--deltas", "--format", "json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    kinds = ("esd", "esd_linear", "randesd", "detX", "vectors", "deltas")
    expected = {f"tiny.safetensors.layer{r['layer_id']}.{r['longname']}.{kind}.png" for r in rows for kind in kinds}
    assert {p.name for p in out.iterdir()} == expected
    for row in rows:
        esd = out / f"tiny.safetensors.layer{row['layer_id']}.{row['longname']}.esd.png"
        metadata = Image.open(esd).text
        assert f"alpha={row['alpha']:.6g}" in metadata["Description"]
        # The fitted line: a red segment of at least ~100 pixels (2.5 px wide, from xmin to lambda_max).
        assert fit_colored_pixels(esd) > 150, esd.name


def test_no_figure_is_cut_off_at_its_edges(tmp_path, capsys):
    # Fixed margins replace tight_layout (layer_plots._figure): every label must still fit, whatever the scale of
    # the eigenvalues (tick labels from 1e-8 to 1e+6). A label cut by the edge leaves ink in the outermost pixels.
    # Also drawn, not failed: a layer with no eigenvalue above the fit's threshold, and one with a single value.
    path = tmp_path / "scales.safetensors"
    tensors = {
        f"{name}.weight": heavy(260, 110, seed) * scale
        for seed, (name, scale) in enumerate([("small", 1e-4), ("unit", 1.0), ("large", 1e3)])
    }
    tensors["orthogonal.weight"] = np.eye(200, 90, dtype=np.float32)
    tensors["one_entry.weight"] = np.pad(np.ones((1, 1), np.float32), ((0, 199), (0, 89)))  # detX_val 0
    save_file(tensors, path)
    out = tmp_path / "figures"
    argv = ["analyze", str(path), "--plot", str(out), "--randomize", "--mp-fit", "--detX", "--vectors", "--deltas"]
    with warnings.catch_warnings():  # nor warned: a density of no values (no level spacing above 0) was 0/0
        warnings.simplefilter("error", RuntimeWarning)
        assert main([*argv, "--format", "json"]) == 0
    capsys.readouterr()
    figures = sorted(out.iterdir())
    assert len(figures) == 5 * 6
    for figure in figures:
        rgb = np.asarray(Image.open(figure).convert("RGB"))
        frame = np.concatenate(
            [rgb[:2].reshape(-1, 3), rgb[-2:].reshape(-1, 3), rgb[:, :2].reshape(-1, 3), rgb[:, -2:].reshape(-1, 3)]
        )
        assert (frame == 255).all(), f"{figure.name}: something is drawn on the edge of the figure"
    # A value with no logarithm (detX_val 0 here) draws no line, and warns neither of log10(0) nor of a legend
    # without entries.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["analyze", str(path), "--plot", str(tmp_path / "detx"), "--detX", "--format", "json"]) == 0
    assert not [str(w.message) for w in caught if w.filename.endswith("layer_plots.py")]


def test_the_fit_line_is_what_the_pixels_see(tmp_path):
    row = ww_core.analyze_matrix(heavy(300, 120, 3), name="w.weight", keep_evals=True)
    failed = ww_core.analyze_matrix(heavy(300, 120, 3), name="w.weight", keep_evals=True)
    failed.alpha = failed.xmin = float("nan")  # a failed fit draws no line
    (with_fit,) = [p for p in write_layer_plots([row], tmp_path / "a", "m") if p.name.endswith(".esd.png")]
    (without,) = [p for p in write_layer_plots([failed], tmp_path / "b", "m") if p.name.endswith(".esd.png")]
    assert fit_colored_pixels(with_fit) > 150
    assert fit_colored_pixels(without) == 0


def test_notebook_plot_true_saves_into_savefig(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(100, 80), torch.nn.ReLU(), torch.nn.Linear(80, 60))
    ww_core.WeightWatcher(model).analyze(plot=True, savefig=str(tmp_path / "ww-img"))
    names = sorted(p.name for p in (tmp_path / "ww-img").iterdir())
    assert names == [
        "Sequential.layer1.0.esd.png",
        "Sequential.layer1.0.esd_linear.png",
        "Sequential.layer3.2.esd.png",
        "Sequential.layer3.2.esd_linear.png",
    ]


def test_plot_into_a_file_is_a_usage_error(model_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["analyze", str(model_file), "--plot", str(blocker)]) == 2
    assert "--plot" in capsys.readouterr().err
