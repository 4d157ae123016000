"""Score-quality metrics against the dataset's true score."""

from __future__ import annotations

import numpy as np

from benchbench.evaluation import EvalContext


def fisher_divergence(ctx: EvalContext) -> float:
    """1/2 E_test ||s_theta(x) - grad log p(x)||^2, the quantity score matching minimises.

    Noise-conditional models are evaluated at their smallest sigma, the one closest to the data.
    """
    x = ctx.data.test
    sigma = float(ctx.model.sigmas[-1]) if ctx.model.noise_conditional else None
    diff = ctx.model.score(x, sigma) - ctx.data.score(x.astype(np.float64))
    return float(0.5 * np.mean(np.sum(diff * diff, axis=1)))
