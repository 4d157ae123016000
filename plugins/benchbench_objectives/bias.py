"""The built-in biased objectives' E[loss] - J on the conformance kit's linear score model s(x) = -A(x - b).

Numpy only (imported by the kit through ``Objective.expected_bias``). For x ~ (mu, Sigma) and z ~ N(0, I):
J(x + sigma z) averages to J + sigma^2/2 ||A||_F^2, and E[z's(x + sigma z)] = -sigma tr(A).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchbench.noise import sigma_ladder
from benchbench.testing.reference import exact_objective


def denoising_bias(
    hparams: Mapping[str, Any], A: np.ndarray, b: np.ndarray, mu: np.ndarray, Sigma: np.ndarray
) -> float:
    """E 1/2||s(x + sigma z) + z/sigma||^2 = J + d/(2 sigma^2) + sigma^2/2 ||A||_F^2."""
    sigma = hparams["sigma"]
    return A.shape[0] / (2 * sigma**2) + sigma**2 / 2 * np.sum(A**2)


def multiscale_bias(
    hparams: Mapping[str, Any], A: np.ndarray, b: np.ndarray, mu: np.ndarray, Sigma: np.ndarray
) -> float:
    """With lambda = sigma^2 and sigma uniform on the ladder: E = m2 J + d/2 + m4/2 ||A||_F^2 (m_k = mean sigma^k)."""
    ladder = sigma_ladder(hparams["sigma_min"], hparams["sigma_max"], hparams["n_sigmas"])
    m2, m4 = np.mean(ladder**2), np.mean(ladder**4)
    return (m2 - 1) * exact_objective(A, b, mu, Sigma) + A.shape[0] / 2 + m4 / 2 * np.sum(A**2)
