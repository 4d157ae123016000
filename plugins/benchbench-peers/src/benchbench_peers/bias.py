"""E[loss] - J of the peers' biased losses on the conformance kit's linear score model s(x) = -A(x - b).

For z ~ N(0, I): 1/2 E||sigma s(x + sigma z) + z||^2 = sigma^2 J + d/2 + sigma^4/2 ||A||_F^2 (the NCSN term), and
a sliced or Hutchinson estimate at x + sigma z averages to J + sigma^2/2 ||A||_F^2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchbench.testing.reference import exact_objective


def _dsm(sigma: float, A: np.ndarray) -> float:
    """1/2 E||s(x + sigma z) + z / sigma||^2 - J."""
    return A.shape[0] / (2 * sigma**2) + sigma**2 / 2 * np.sum(A**2)


def torchebm_dsm_bias(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    return _dsm(hparams["sigma"], A)


def toy_gradlogp_dsm_bias(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    return _dsm(0.1, A)


def toy_gradlogp_deen_bias(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    """DEEN is sigma^4 times DSM: sigma^4 (J + dsm bias) - J."""
    sigma, j = 0.1, exact_objective(A, b, mu, Sigma)
    return sigma**4 * (j + _dsm(sigma, A)) - j


def score_models_dsm_bias(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    """2 E_t[sigma^2 J + d/2 + sigma^4/2 ||A||^2] - J with sigma = sigma_min r^t, t ~ U[0, 1], r = max/min:
    E[sigma^k] = sigma_min^k (r^k - 1) / (k ln r)."""
    low, r = hparams["sigma_min"], hparams["sigma_max"] / hparams["sigma_min"]
    m2, m4 = (low**k * (r**k - 1) / (k * np.log(r)) for k in (2, 4))
    return (2 * m2 - 1) * exact_objective(A, b, mu, Sigma) + A.shape[0] + m4 * np.sum(A**2)


def coreax_noise_conditional_bias(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    """sum_i sigma_i^2 (J + sigma_i^2/2 ||A||^2) - J, sigma_i = sigma gamma^i, if the perturbation were random."""
    sigmas = hparams["sigma"] * hparams["gamma"] ** np.arange(hparams["num_noise_models"])
    s2, s4 = np.sum(sigmas**2), np.sum(sigmas**4)
    return (s2 - 1) * exact_objective(A, b, mu, Sigma) + s4 / 2 * np.sum(A**2)
