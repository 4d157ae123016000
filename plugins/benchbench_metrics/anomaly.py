"""Anomaly detection with the learned score: the ROC AUC of ||s(x)|| on held-out normals against outliers.

The anomaly score is the score norm a(x) = ||s_theta(x)|| (noise-conditional models at their smallest sigma).
Why this one: it costs one forward pass, so it scales to 784-pixel images and convolutional models, where the
per-point implicit score-matching term 1/2 ||s||^2 + tr(ds/dx) (the Hyvarinen score) costs d forward-mode
passes per point (measured ~1 s per MNIST image for the conv model on this CPU); score norms are also the
features of Mahmood et al. (2021, "Multiscale score matching for out-of-distribution detection"). Its blind
spot, stated: ||grad log p|| vanishes at every stationary point of p, so a point exactly between two modes looks
as normal as a mode; the Hyvarinen score would tell them apart, at d times the cost. For a Gaussian,
||s(x)|| = ||Sigma^-1 (x - mu)||, which for Sigma = I is the distance to the mean, the optimal detector of a
widened Gaussian (the Neyman-Pearson statistic of N(mu, c^2 I) against N(mu, I) is ||x - mu||).

Outliers, declared:

- a dataset that brings its own (``Data.info["outliers"]``: ``mnist:exclude_class=k`` holds class k out of
  training and testing, and its images are the outliers), against the held-out normals;
- any other dataset with a known score (the synthetic ones): the test split is halved; the first half are the
  normals, the second half is widened about the training mean m by :data:`WIDEN`, x -> m + WIDEN (x - m), so the
  outliers follow the data distribution stretched by 1.5 (for N(mu, Sigma): N(mu, 2.25 Sigma));
- otherwise the metric does not apply.

Where the true score is known, ``.true_score`` is the same AUC with ||grad log p|| on the same points: the
reference a perfect score would reach with this detector.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from benchbench import Data, EvalContext

WIDEN = 1.5
ANOMALY_POINTS = 1000
"""At most this many normals and as many outliers: the AUC's standard error is then below 0.01."""


def roc_auc(normal: np.ndarray, outlier: np.ndarray) -> float:
    """P(a(outlier) > a(normal)) + 1/2 P(tie): the Mann-Whitney U statistic over all pairs, by ranks."""
    ranks = rankdata(np.concatenate([normal, outlier]))
    n_normal, n_outlier = len(normal), len(outlier)
    return float((ranks[n_normal:].sum() - n_outlier * (n_outlier + 1) / 2) / (n_normal * n_outlier))


def outlier_sets(data: Data) -> tuple[np.ndarray, np.ndarray] | None:
    """(normals, outliers) as declared in the module docstring, or None where the dataset declares none."""
    if data.info.get("outliers") is not None:
        return data.test[:ANOMALY_POINTS], np.asarray(data.info["outliers"])[:ANOMALY_POINTS]
    if data.score is None or len(data.test) < 2:
        return None
    half = min(len(data.test) // 2, ANOMALY_POINTS)
    centre = data.train.mean(axis=0)
    return data.test[:half], centre + WIDEN * (data.test[half : 2 * half] - centre)


def anomaly_auc(ctx: EvalContext) -> dict[str, float] | None:
    """ROC AUC of ||s_theta(x)|| separating outliers from held-out normals (.true_score: with the true score)."""
    sets = outlier_sets(ctx.data)
    if sets is None:
        return None
    normal, outlier = (np.asarray(part, dtype=np.float64) for part in sets)
    sigma = float(ctx.model.sigmas[-1]) if ctx.model.noise_conditional else None
    norms = np.linalg.norm(ctx.model.score(np.concatenate([normal, outlier]), sigma), axis=1)
    result = {"value": roc_auc(norms[: len(normal)], norms[len(normal) :])}
    if ctx.data.score is not None:
        true = np.linalg.norm(ctx.data.score(np.concatenate([normal, outlier])), axis=1)
        result["true_score"] = roc_auc(true[: len(normal)], true[len(normal) :])
    return result
