"""Score-matching losses in PyTorch: pure functions ``loss(score_fn, x, rng, **hparams) -> scalar``.

Convention: the implicit score-matching objective is J(theta) = E[1/2 ||s(x)||^2 + tr(ds/dx)], which
equals the Fisher divergence 1/2 E||s - grad log p||^2 minus a constant of the data (Hyvarinen 2005).
``score_fn`` is any callable; ``rng`` is a ``torch.Generator`` on ``x``'s device, the only source of
randomness. The JAX backend implements the same names with the same hyperparameters.
"""

from __future__ import annotations

import torch

from benchbench import ParameterError
from benchbench.noise import Preconditioning, diffusion_sigma, diffusion_weight, sigma_ladder
from benchbench_torch.autodiff import ScoreFn, score_and_quadratic, score_and_trace

PROJECTIONS = ("gaussian", "rademacher", "sphere")


def exact_loss(
    score_fn: ScoreFn, x: torch.Tensor, rng: torch.Generator, chunk: int = 0, method: str = "auto"
) -> torch.Tensor:
    """Implicit score matching with the exact trace (Hyvarinen 2005): mean of 1/2 ||s||^2 + tr(ds/dx).

    ``chunk`` > 0 takes the trace over blocks of that many basis vectors to bound memory; ``method``
    picks how (see :func:`benchbench_torch.autodiff.score_and_trace`). Deterministic: ``rng`` is unused.
    """
    s, trace = score_and_trace(score_fn, x, chunk, method)
    return (0.5 * s.pow(2).sum(dim=1) + trace).mean()


def projections(x: torch.Tensor, rng: torch.Generator, n_projections: int, projection: str) -> torch.Tensor:
    """Random directions v (n, n_projections, d) with E[v v'] = I, as Hutchinson's estimator needs.

    ``sphere`` draws uniformly on the sphere of radius sqrt(d), not 1: the reference sliced
    score-matching code normalises to unit norm, which makes E[v v'] = I/d and silently divides the
    trace term (and the whole loss) by d. We keep the estimator unbiased for J instead.
    """
    shape = (x.shape[0], n_projections, x.shape[1])
    if projection == "gaussian":
        return torch.randn(shape, generator=rng, device=x.device, dtype=x.dtype)
    if projection == "rademacher":
        return torch.randint(0, 2, shape, generator=rng, device=x.device).to(x.dtype) * 2 - 1
    if projection == "sphere":
        v = torch.randn(shape, generator=rng, device=x.device, dtype=x.dtype)
        return v * (x.shape[1] ** 0.5 / v.norm(dim=-1, keepdim=True))
    raise ParameterError(f"projection={projection!r} is not valid; expected one of {', '.join(PROJECTIONS)}")


def sliced_loss(
    score_fn: ScoreFn, x: torch.Tensor, rng: torch.Generator, n_projections: int = 1, projection: str = "gaussian"
) -> torch.Tensor:
    """Sliced score matching (Song et al. 2019): E_v[1/2 (v's)^2 + v'(ds/dx)v].

    Unbiased for J whenever E[v v'] = I. With M projections it is the mean over the M directions.
    """
    v = projections(x, rng, n_projections, projection)
    s, quadratic = score_and_quadratic(score_fn, x, v)
    per_direction = 0.5 * (v * s.unsqueeze(1)).sum(dim=2).pow(2) + quadratic
    return per_direction.mean()


def hutchinson_loss(
    score_fn: ScoreFn, x: torch.Tensor, rng: torch.Generator, n_projections: int = 1, projection: str = "gaussian"
) -> torch.Tensor:
    """SSM-VR (Song et al. 2019, eq. 8): E[1/2 ||s||^2 + v'(ds/dx)v], Hutchinson's trace estimator.

    The norm term is exact, so only the trace is estimated: lower variance than :func:`sliced_loss`
    for the same number of Jacobian-vector products.
    """
    v = projections(x, rng, n_projections, projection)
    s, quadratic = score_and_quadratic(score_fn, x, v)
    return (0.5 * s.pow(2).sum(dim=1) + quadratic.mean(dim=1)).mean()


def denoising_loss(score_fn: ScoreFn, x: torch.Tensor, rng: torch.Generator, sigma: float = 0.1) -> torch.Tensor:
    """Denoising score matching (Vincent 2011): 1/2 E||s(x + sigma z) + z / sigma||^2.

    Its minimiser is the score of the data convolved with N(0, sigma^2 I), not of the data itself.
    """
    z = torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype)
    residual = score_fn(x + sigma * z) + z / sigma
    return 0.5 * residual.pow(2).sum(dim=1).mean()


def weighted_denoising(
    score_fn, x: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """1/2 mean of weight ||sigma s(x + sigma z, sigma) + z||^2, one sigma and weight per example: the DSM residual
    s + z/sigma times sigma, which every noise-conditional objective here weighs per level."""
    scale = sigma.unsqueeze(1)
    residual = scale * score_fn(x + scale * z, sigma) + z
    return 0.5 * (weight * residual.pow(2).sum(dim=1)).mean()


def multiscale_denoising_loss(
    score_fn,
    x: torch.Tensor,
    rng: torch.Generator,
    sigma_min: float = 0.01,
    sigma_max: float = 1.0,
    n_sigmas: int = 10,
    preconditioning: str = "score",
    sigma_data: float = 1.0,
) -> torch.Tensor:
    """NCSN (Song & Ermon 2019, eq. 6): mean over the ladder of lambda(sigma_i) 1/2 E||s(x~, sigma_i) + z/sigma_i||^2.

    One level is drawn uniformly per example, an unbiased estimate of the average over the ladder. The weight
    follows the network's preconditioning (:class:`benchbench.noise.Preconditioning`): ``edm`` Karras et al.
    (2022)'s, ``score`` and ``ncsn`` lambda = sigma^2. ``score_fn(x, sigma)`` takes one sigma per example, shape (n,).
    """
    sigmas = torch.as_tensor(sigma_ladder(sigma_min, sigma_max, n_sigmas), device=x.device, dtype=x.dtype)
    sigma = sigmas[torch.randint(0, n_sigmas, (x.shape[0],), generator=rng, device=x.device)]
    z = torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype)
    weight = Preconditioning(preconditioning, sigma_data).loss_weight(sigma)
    return weighted_denoising(score_fn, x, sigma, z, weight)


def _diffusion_loss(schedule: str, score_fn, x: torch.Tensor, rng: torch.Generator, hparams) -> torch.Tensor:
    """Song et al. (2021), eq. 7, in scaled coordinates (:mod:`benchbench.noise`): t ~ U(eps, 1), x~ = x + sigma z."""
    eps = hparams["eps"]
    t = eps + (1 - eps) * torch.rand(x.shape[0], generator=rng, device=x.device, dtype=x.dtype)
    z = torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype)
    sigma = diffusion_sigma(schedule, t, hparams, torch)
    weight = diffusion_weight(schedule, hparams["weighting"], t, hparams, torch)
    return weighted_denoising(score_fn, x, sigma, z, weight)


def diffusion_ve_loss(
    score_fn,
    x: torch.Tensor,
    rng: torch.Generator,
    sigma_min: float = 0.01,
    sigma_max: float = 10.0,
    eps: float = 1e-5,
    weighting: str = "sigma2",
    n_sigmas: int = 10,
    preconditioning: str = "score",
    sigma_data: float = 1.0,
) -> torch.Tensor:
    """Score SDE, VE (Song et al. 2021): E_t lambda(t) 1/2 E||s(x + sigma(t) z, sigma(t)) + z / sigma(t)||^2,
    sigma(t) = sigma_min (sigma_max / sigma_min)^t, t ~ U(eps, 1). ``n_sigmas``, ``preconditioning`` and
    ``sigma_data`` shape the model and its ladder, not the loss."""
    hparams = {"sigma_min": sigma_min, "sigma_max": sigma_max, "eps": eps, "weighting": weighting}
    return _diffusion_loss("ve", score_fn, x, rng, hparams)


def diffusion_vp_loss(
    score_fn,
    x: torch.Tensor,
    rng: torch.Generator,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    eps: float = 1e-5,
    weighting: str = "sigma2",
    t_end: float = 1e-3,
    n_sigmas: int = 10,
    preconditioning: str = "score",
    sigma_data: float = 1.0,
) -> torch.Tensor:
    """Score SDE, VP (Song et al. 2021): x_t = alpha(t) x + sigma_vp(t) z, learned in the scaled coordinates
    x_t / alpha(t) = x + sigma(t) z, sigma = sqrt(exp(B(t)) - 1), where the model's score is alpha(t) times x_t's
    (:mod:`benchbench.noise`). With lambda = sigma_vp^2 the loss is exactly eq. 7's: alpha s_vp = s and
    sigma_vp s_vp + z = sigma s + z. ``t_end``, ``n_sigmas``, ``preconditioning``, ``sigma_data``: model only."""
    hparams = {"beta_min": beta_min, "beta_max": beta_max, "eps": eps, "weighting": weighting}
    return _diffusion_loss("vp", score_fn, x, rng, hparams)
