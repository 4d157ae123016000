"""Closed-form biases of the denoising objectives on the conformance kit's linear-Gaussian problem.

For the linear score s(x) = -A(x - b), which ignores sigma, and x of mean mu and covariance Sigma, one level's
term is, with x~ = x + sigma z (s(x~) = s(x) - sigma A z):

    E 1/2 ||sigma s(x~) + z||^2 = sigma^2 J + sigma^4 / 2 ||A||_F^2 + d / 2,

J = E[1/2 ||s||^2 + tr(ds/dx)] (``benchbench.testing.exact_objective``). An objective that weighs level sigma by
w draws sigma from some law, so E[loss] = E[w sigma^2] J + E[w sigma^4] ||A||_F^2 / 2 + E[w] d / 2, and the bias
the kit checks is that minus J. Each function here has the kit's ``expected_bias(hparams, A, b, mu, Sigma)``
signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchbench.noise import Preconditioning, diffusion_sigma, diffusion_weight, sigma_ladder, time_expectation
from benchbench.testing.reference import exact_objective


def _bias(moments: tuple[float, float, float], A, b, mu, Sigma) -> float:
    """(E[w sigma^2], E[w sigma^4], E[w]) -> E[loss] - J."""
    w_s2, w_s4, w = moments
    return (w_s2 - 1) * exact_objective(A, b, mu, Sigma) + w_s4 / 2 * float(np.sum(A**2)) + w * A.shape[0] / 2


def denoising(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    """One sigma, the loss 1/2 ||s + z/sigma||^2 = 1/2 ||sigma s + z||^2 / sigma^2: w = 1/sigma^2."""
    sigma = hparams["sigma"]
    return _bias((1.0, sigma**2, sigma**-2), A, b, mu, Sigma)


def multiscale(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    """sigma uniform on the ladder, w the preconditioning's loss weight."""
    ladder = sigma_ladder(hparams["sigma_min"], hparams["sigma_max"], hparams["n_sigmas"])
    w = Preconditioning(hparams["preconditioning"], hparams["sigma_data"]).loss_weight(ladder)
    return _bias((np.mean(w * ladder**2), np.mean(w * ladder**4), np.mean(w)), A, b, mu, Sigma)


def _diffusion(schedule: str, hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    """t ~ U(eps, 1): the three moments by quadrature (:func:`benchbench.noise.time_expectation`)."""

    def moment(power: int):
        def integrand(t):
            w = diffusion_weight(schedule, hparams["weighting"], t, hparams)
            return w * diffusion_sigma(schedule, t, hparams) ** power

        return time_expectation(integrand, hparams["eps"])

    return _bias((moment(2), moment(4), moment(0)), A, b, mu, Sigma)


def diffusion_ve(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    return _diffusion("ve", hparams, A, b, mu, Sigma)


def diffusion_vp(hparams: Mapping[str, Any], A, b, mu, Sigma) -> float:
    return _diffusion("vp", hparams, A, b, mu, Sigma)
