"""A Gaussian N(mu, Sigma) with a chosen condition number: every quantity in closed form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchbench import Data, draw_split


def covariance(dim: int, cond: float, density_seed: int) -> np.ndarray:
    """Sigma = Q diag(lambda) Q' with variances geometric from 1 to ``cond`` and a Haar-random Q."""
    variances = np.geomspace(1.0, cond, dim) if dim > 1 else np.ones(1)
    if dim == 1 or cond == 1.0:
        return np.diag(variances)
    q, r = np.linalg.qr(np.random.default_rng(density_seed).standard_normal((dim, dim)))
    q *= np.sign(np.diag(r))
    return (q * variances) @ q.T


def load(params: Mapping[str, Any], seed: int) -> Data:
    dim = params["dim"]
    mu = np.full(dim, float(params["mean"]))
    sigma = covariance(dim, params["cond"], params["density_seed"])
    precision = np.linalg.inv(sigma)
    _, logdet = np.linalg.slogdet(sigma)
    chol = np.linalg.cholesky(sigma)
    train, test = draw_split(lambda n, rng: mu + rng.standard_normal((n, dim)) @ chol.T, params, seed)

    def score(points: np.ndarray) -> np.ndarray:
        return -(points - mu) @ precision

    def log_prob(points: np.ndarray) -> np.ndarray:
        centred = points - mu
        return -0.5 * (np.einsum("ni,ij,nj->n", centred, precision, centred) + logdet + dim * np.log(2 * np.pi))

    def perturbed_score(points: np.ndarray, noise: float) -> np.ndarray:
        return -(points - mu) @ np.linalg.inv(sigma + noise**2 * np.eye(dim))

    return Data(
        name="gaussian",
        train=train,
        test=test,
        shape=(dim,),
        score=score,
        log_prob=log_prob,
        perturbed_score=perturbed_score,
        info={"mean": mu, "covariance": sigma},
    )
