"""describe(): the sizes it reports from shapes alone are the analysis's."""

import numpy as np
import pytest

import ww_core
from ww_core.describe import STATUS_ANALYZE, describe_layer


@pytest.mark.parametrize(
    ("channels", "dims"),
    [("first", (24, 16, 6)), ("last", (3, 2, 384)), (None, (3, 2, 384))],
)
def test_describe_reads_a_conv_kernel_in_the_channels_layout_the_analysis_reads(channels, dims):
    """With channels='first' describe reported torch's layout: N=3, M=2, rf=384 for a Keras (2, 3, 16, 24) kernel."""
    kernel = np.random.default_rng(0).standard_normal((2, 3, 16, 24)).astype(np.float32)
    options = ww_core.AnalysisOptions(channels=channels)
    described = describe_layer(0, "conv.weight", kernel.shape, "float32", True, options)
    analyzed = ww_core.analyze_matrix(kernel, name="conv.weight", channels=channels)
    assert (described.N, described.M, described.rf) == (analyzed.N, analyzed.M, analyzed.rf) == dims
    assert (described.status, described.num_evals) == (STATUS_ANALYZE, analyzed.num_evals)


def test_watcher_describe_honours_channels_for_a_conv_kernel():
    kernel = np.random.default_rng(1).standard_normal((2, 3, 16, 24)).astype(np.float32)
    watcher = ww_core.WeightWatcher(model={"conv.weight": kernel})
    described = watcher.describe(channels="first").iloc[0]
    analyzed = watcher.analyze(channels="first").iloc[0]
    assert (described["N"], described["M"], described["rf"]) == (analyzed["N"], analyzed["M"], analyzed["rf"])
    assert (described["N"], described["M"], described["rf"]) == (24, 16, 6)
