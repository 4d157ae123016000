"""Noise levels of noise- and time-conditional objectives, one definition for every backend (pure numpy).

Every such model in benchbench is a score ``s(x, sigma)`` of the data convolved with N(0, sigma^2 I), one sigma
per example, whatever the objective: the discrete NCSN ladder, or the score-SDE processes of Song et al. (2021)

- VE: x_t = x + sigma(t) z with sigma(t) = sigma_min (sigma_max / sigma_min)^t (geometric in t);
- VP: x_t = alpha(t) x + sigma_vp(t) z, alpha(t) = exp(-B(t)/2), sigma_vp^2 = 1 - alpha^2,
  B(t) = beta_min t + (beta_max - beta_min) t^2 / 2.

A VP model is trained and used in the scaled coordinates x_t / alpha(t) = x + sigma(t) z with
sigma(t) = sigma_vp(t) / alpha(t) = sqrt(exp(B(t)) - 1) (Karras et al. 2022, section 2: every such process is
this one up to a scaling s(t) and a clock sigma(t)); its score there is alpha(t) times the score of x_t. So
``score_fn(x, sigma)``, the metrics (``perturbed_score(x, sigma)`` is the truth at every level) and the samplers
need nothing per process: a process is only the distribution of sigma during training and its loss weight.

The homotopy x_t = sqrt(t) x + sqrt(1 - t) z between noise (t = 0) and data (t = 1) is the VP path with the
clock reversed: alpha^2 = t, i.e. sigma = sqrt((1 - t) / t) here.

The network's preconditioning (:class:`Preconditioning`) is declared here too, so both backends build the same
network from the objective's params: ``objective_preconditioning(objective, hparams)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchbench.errors import ParameterError, TrialFailure

SCHEDULES = ("ladder", "ve", "vp")
"""``Objective.noise_schedule`` values: NCSN's discrete ladder, and the two score-SDE processes."""

PRECONDITIONINGS = ("score", "edm", "ncsn")
WEIGHTINGS = ("sigma2", "likelihood")

# Gauss-Legendre nodes in log t for the expectations over t ~ U(eps, 1): VP's likelihood weight grows like 1/t
# near eps, which is smooth in log t. 200 nodes reproduce the VE closed form E[sigma^4] to 1e-13 (tested).
_QUADRATURE_NODES = 200


def sigma_ladder(sigma_min: float, sigma_max: float, n_sigmas: int) -> np.ndarray:
    """NCSN's noise levels, geometric from ``sigma_max`` down to ``sigma_min`` (float64, descending)."""
    if sigma_min > sigma_max:
        raise ParameterError(f"sigma_min={sigma_min} is larger than sigma_max={sigma_max}")
    return np.geomspace(sigma_max, sigma_min, n_sigmas)


# -- the two processes, as functions of t (numpy or any array namespace with exp/log/sqrt) --------------------


def ve_sigma(t, sigma_min: float, sigma_max: float):
    """VE: sigma(t) = sigma_min (sigma_max / sigma_min)^t."""
    return sigma_min * (sigma_max / sigma_min) ** t


def vp_integral(t, beta_min: float, beta_max: float):
    """B(t) = int_0^t beta(s) ds for beta(t) = beta_min + t (beta_max - beta_min); alpha(t) = exp(-B/2)."""
    return beta_min * t + 0.5 * (beta_max - beta_min) * t * t


def _expm1(b, xp: Any):
    """exp(b) - 1 = tanh(b/2) (exp(b) + 1), accurate for small b (sigma(1e-5) ~ 1e-3 keeps its digits in float32).

    Not ``expm1``: XLA on CPU (jax 0.10.2) miscompiled a loss holding both expm1(B) and expm1(-B) under
    jit(vmap) over 8 or more keys (measured: 204 instead of 9.1e8 for the conformance kit's VP likelihood loss)."""
    return xp.tanh(0.5 * b) * (xp.exp(b) + 1.0)


def vp_sigma(t, beta_min: float, beta_max: float, xp: Any = np):
    """VP in scaled coordinates: sigma(t) = sigma_vp / alpha = sqrt(exp(B(t)) - 1)."""
    return xp.sqrt(_expm1(vp_integral(t, beta_min, beta_max), xp))


def diffusion_sigma(schedule: str, t, hparams: Mapping[str, Any], xp: Any = np):
    """sigma(t) of the ``ve`` or ``vp`` process with the objective's params."""
    if schedule == "ve":
        return ve_sigma(t, hparams["sigma_min"], hparams["sigma_max"])
    return vp_sigma(t, hparams["beta_min"], hparams["beta_max"], xp)


def diffusion_weight(schedule: str, weighting: str, t, hparams: Mapping[str, Any], xp: Any = np):
    """w(t) with which 1/2 ||sigma s(x + sigma z, sigma) + z||^2 enters the loss.

    lambda(t) = sigma(t)^2 (Song et al. 2021, eq. 7, the default) is w = 1 in every process: the DSM residual
    s + z/sigma times sigma. Likelihood weighting lambda = g(t)^2 (Song, Durkan, Murray & Ermon 2021) is
    w = g^2 / sigma_native^2: VE, g^2 = d sigma^2/dt gives the constant 2 ln(sigma_max / sigma_min); VP,
    g^2 = beta(t) and sigma_native^2 = 1 - exp(-B(t)).
    """
    if weighting == "sigma2":
        return xp.ones_like(t)
    if schedule == "ve":
        return 2.0 * np.log(hparams["sigma_max"] / hparams["sigma_min"]) * xp.ones_like(t)
    beta = hparams["beta_min"] + t * (hparams["beta_max"] - hparams["beta_min"])
    return beta / -_expm1(-vp_integral(t, hparams["beta_min"], hparams["beta_max"]), xp)


def time_expectation(function, eps: float) -> float:
    """E_{t ~ U(eps, 1)}[function(t)], by Gauss-Legendre quadrature in log t (float64)."""
    nodes, weights = np.polynomial.legendre.leggauss(_QUADRATURE_NODES)
    low = np.log(eps)
    u = low + (nodes + 1) * (-low) / 2
    t = np.exp(u)
    return float(np.sum(weights * (-low) / 2 * t * function(t)) / (1 - eps))


def diffusion_ladder(schedule: str, hparams: Mapping[str, Any]) -> np.ndarray:
    """The levels metrics evaluate and annealed samplers visit: sigma(t) at ``n_sigmas`` times uniform from
    t = 1 down to the process's end (VE: t = 0, sigma_min; VP: ``t_end``, score SDE's sampling eps)."""
    end = 0.0 if schedule == "ve" else hparams["t_end"]
    return np.asarray(diffusion_sigma(schedule, np.linspace(1.0, end, hparams["n_sigmas"]), hparams), np.float64)


# -- the network's preconditioning ------------------------------------------------------------------------


@dataclass(frozen=True)
class Preconditioning:
    """s(x, sigma) = skip(sigma) x + out(sigma) F(c_in(sigma) x, c_noise(sigma)), F the raw network, sd = sigma_data.

    ``edm`` (Karras et al. 2022, Table 1): the denoiser D = c_skip x + c_out F with c_skip = sd^2/(sigma^2 + sd^2),
    c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4, written as a
    score s = (D - x) / sigma^2: skip = -1 / (sigma^2 + sd^2) (the score of N(0, (sigma^2 + sd^2) I), exact for
    data of variance sd^2) and out = c_out / sigma^2. Its loss weight makes F's target unit-variance at every level.
    ``score`` (the default): EDM's skip, c_in and c_noise, but out = 1 / sqrt(sigma^2 + sd^2), and the weight that
    makes F's target unit-variance for this out, lambda = sigma^2. EDM bounds the error of the denoiser, and the
    score's error is the denoiser's divided by sigma^2: F's error reaches the score multiplied by ~1/sigma (100 at
    sigma = 0.01), which is what the Fisher divergence at sigma_min measures. Here it is multiplied by at most
    1/sd. Measured (quick-suite settings, 1000 steps): Fisher divergence at sigma_min = 0.01 on
    gaussian:dim=16,cond=10 fell from ~20-50 (edm, ncsn) to ~1; see tests/test_noise_conditional.py.
    ``ncsn`` (Song & Ermon 2020): s = F([x, ln sigma]) / sigma with lambda = sigma^2, benchbench's first network.
    Frozen and hashable: the JAX backend closes jitted programs over it.
    """

    kind: str = "score"
    sigma_data: float = 1.0

    def coefficients(self, sigma, xp: Any = np):
        """(skip, out, c_in, c_noise) for ``sigma`` in any array namespace with sqrt and log (numpy, torch, jnp)."""
        if self.kind == "ncsn":
            return 0.0 * sigma, 1.0 / sigma, 1.0 + 0.0 * sigma, xp.log(sigma)
        total = sigma * sigma + self.sigma_data**2
        root = xp.sqrt(total)
        out = self.sigma_data / (sigma * root) if self.kind == "edm" else 1.0 / root
        return -1.0 / total, out, 1.0 / root, 0.25 * xp.log(sigma)

    def loss_weight(self, sigma):
        """The weight on 1/2 ||sigma s + z||^2. EDM's lambda = (sigma^2 + sd^2) / (sigma sd)^2 on ||D - x||^2, and
        D - x = sigma (sigma s + z): the weight (sigma^2 + sd^2) / sd^2. score and ncsn: lambda = sigma^2 on the DSM
        residual s + z / sigma, the weight 1."""
        if self.kind == "edm":
            return (sigma * sigma + self.sigma_data**2) / self.sigma_data**2
        return 1.0 + 0.0 * sigma


def objective_preconditioning(objective: Any, hparams: Mapping[str, Any]) -> Preconditioning | None:
    """The network a noise-conditional objective trains: from its ``preconditioning`` and ``sigma_data`` params
    (``score`` with sigma_data = 1 when it declares neither). None for an objective that is not noise-conditional."""
    if not objective.noise_conditional:
        return None
    return Preconditioning(str(hparams.get("preconditioning", "score")), float(hparams.get("sigma_data", 1.0)))


def objective_ladder(objective: Any, hparams: Mapping[str, Any], backend: str) -> np.ndarray | None:
    """The ladder a backend gives a noise-conditional objective's trained model (``TrainedModel.sigmas``)."""
    if not objective.noise_conditional:
        return None
    schedule = getattr(objective, "noise_schedule", "ladder")
    needed = {
        "ladder": ("sigma_min", "sigma_max", "n_sigmas"),
        "ve": ("sigma_min", "sigma_max", "n_sigmas"),
        "vp": ("beta_min", "beta_max", "t_end", "n_sigmas"),
    }.get(schedule)
    if needed is None:
        raise TrialFailure(
            f"objective {objective.name!r}: noise_schedule={schedule!r} is not one of {', '.join(SCHEDULES)}"
        )
    missing = [name for name in needed if name not in hparams]
    if missing:
        raise TrialFailure(
            f"objective {objective.name!r} is noise-conditional but does not declare {', '.join(missing)}; "
            f"the {backend} backend builds its noise ladder from {', '.join(needed)}"
        )
    try:
        if schedule == "ladder":
            return sigma_ladder(hparams["sigma_min"], hparams["sigma_max"], hparams["n_sigmas"])
        if schedule == "ve" and hparams["sigma_min"] > hparams["sigma_max"]:
            raise ParameterError(f"sigma_min={hparams['sigma_min']} is larger than sigma_max={hparams['sigma_max']}")
        return diffusion_ladder(schedule, hparams)
    except ParameterError as error:
        raise ParameterError(f"objective {objective.name!r}: {error}") from None
