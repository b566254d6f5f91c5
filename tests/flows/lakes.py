"""Small lakes for tests: models and evals rows without weights, with the derived correlations table."""

import math

from flows.correlations import refresh_correlations
from flows.lake import Lake


def write_lake(root, models, metric="accuracy", scale="fraction"):
    """A lake of models and card evals without weights, with its correlations table. ``models``: (family, repo_id,
    alpha, value, num_params)."""
    lake = Lake.for_writing(root)
    for family, repo_id, alpha, value, num_params in models:
        common = dict(repo_id=repo_id, revision="r1", family=family)
        evals = [dict(common, source="model-index", dataset="d", split="test", metric=metric, value=value, scale=scale)]
        row = dict(
            common,
            status="scanned",
            alpha=alpha,
            alpha_weighted=2 * alpha,
            log_alpha_norm=alpha + 1,
            log_spectral_norm=alpha / 3,
            log_norm=math.sqrt(alpha),
            num_layers=1,
            num_ok=1,
            num_params=num_params,
        )
        lake.commit_model(repo_id, "r1", {"evals": evals, "models": [row]})
    refresh_correlations(lake.root)
    return lake.root
