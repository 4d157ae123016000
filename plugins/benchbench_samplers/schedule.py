"""Langevin step-size schedules, shared by the numpy, torch and JAX samplers (pure numpy).

A schedule is a list of :class:`Level`: run ``n_steps`` Langevin updates with step size ``step_size``,
evaluating the score at ``sigma``. Plain Langevin is one level; annealed Langevin (Song & Ermon 2019,
Algorithm 1) is one level per noise scale. Every backend runs the same schedule with the same update, so
their samples differ only by their random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbench import ParameterError

# eps = 0 means "auto": AUTO_EPS_RATIO * sigma_L^2. NCSN's toy experiment used eps = 0.1 at sigma_L = 1
# (ratio 0.1); its image runs used step_lr = 2e-5 at sigma_L = 0.01 in the code's convention, which is
# eps = 4e-5 in ours (ratio 0.4). Either way each level then diffuses about sqrt(T * alpha_i) ~ 3 sigma_i in
# T = 100 steps, whatever the data's scale; we take the conservative ratio.
AUTO_EPS_RATIO = 0.1


@dataclass(frozen=True)
class Level:
    """``n_steps`` updates x <- x + (step_size / 2) s(x, sigma) + sqrt(step_size) z."""

    sigma: float | None
    step_size: float
    n_steps: int


def geometric_ladder(sigma_max: float, sigma_min: float, n_sigmas: int) -> np.ndarray:
    """Descending sigma_1 = sigma_max > ... > sigma_L = sigma_min, geometric, as NCSN trains and samples."""
    return np.geomspace(sigma_max, sigma_min, n_sigmas)


def ncsn_step_sizes(sigmas: np.ndarray, eps: float) -> np.ndarray:
    """alpha_i = eps (sigma_i / sigma_L)^2: the step shrinks with the noise so that the signal-to-noise ratio
    of each update is the same at every level (Song & Ermon 2019, Algorithm 1)."""
    sigmas = np.asarray(sigmas, dtype=np.float64)
    return eps * (sigmas / sigmas[-1]) ** 2


def langevin_plan(model, eps: float, n_steps: int) -> list[Level]:
    """Plain Langevin; a noise-conditional model is evaluated at its smallest sigma, the one nearest the data."""
    sigma = float(model.sigmas[-1]) if model.noise_conditional else None
    return [Level(sigma, float(eps), int(n_steps))]


def annealed_plan(
    model, eps: float, steps_per_level: int, sigma_max: float, sigma_min: float, n_sigmas: int
) -> list[Level]:
    """The NCSN schedule on the given ladder (``n_sigmas`` > 0) or else on the model's own ``sigmas``.

    A model that is not noise-conditional ignores sigma; it then gets annealed step sizes only, which
    needs an explicit ladder.
    """
    if n_sigmas > 0:
        if not 0 < sigma_min <= sigma_max:
            raise ParameterError(
                f"sampler 'annealed-langevin': sigma_min={sigma_min:g}, sigma_max={sigma_max:g} is not a ladder; "
                "expected 0 < sigma_min <= sigma_max"
            )
        sigmas = geometric_ladder(sigma_max, sigma_min, n_sigmas)
    elif getattr(model, "sigmas", None) is not None:
        sigmas = np.asarray(model.sigmas, dtype=np.float64)
    else:
        raise ParameterError(
            "sampler 'annealed-langevin': the model has no sigma ladder (its objective is not noise-conditional); "
            "give one with sigma_max=..., sigma_min=..., n_sigmas=... or use --sampler langevin"
        )
    step = eps if eps > 0 else AUTO_EPS_RATIO * float(sigmas[-1]) ** 2
    alphas = ncsn_step_sizes(sigmas, step)
    conditional = bool(model.noise_conditional)
    return [Level(float(s) if conditional else None, float(a), int(steps_per_level)) for s, a in zip(sigmas, alphas)]


def per_step(levels: list[Level]) -> tuple[np.ndarray, np.ndarray]:
    """The schedule unrolled to one (sigma, step size) per update, for a single compiled loop (JAX scan).
    A level without sigma gets 0, which a model that is not noise-conditional never reads."""
    sigmas = np.concatenate([np.full(lv.n_steps, lv.sigma if lv.sigma is not None else 0.0) for lv in levels])
    alphas = np.concatenate([np.full(lv.n_steps, lv.step_size) for lv in levels])
    return sigmas, alphas


def sde_grid(model, sampler: str, n_steps: int, sigma_max: float, sigma_min: float) -> np.ndarray:
    """sigma_0 > ... > sigma_{N-1}, geometric from ``sigma_max`` to ``sigma_min`` (0: the model's own ladder's ends),
    then sigma_N = 0: the N steps of a reverse-SDE or probability-flow sampler.

    Every noise-conditional model here is a VE model in its own coordinates (:mod:`benchbench.noise`), and in the
    clock tau = sigma^2 its process is dx = dW_tau whatever the objective: the grid of sigmas is the whole
    discretisation. Geometric sigmas are VE's uniform time steps (Song et al. 2021); a VP model is sampled on the
    same grid, the same marginals on VE's clock (Karras et al. 2022 show the clock is the sampler's to choose).
    """
    if not getattr(model, "noise_conditional", False):
        raise ParameterError(
            f"sampler {sampler!r} needs a noise-conditional model (denoising-multiscale, diffusion-ve, diffusion-vp); "
            "use --sampler langevin for this one"
        )
    ladder = np.asarray(model.sigmas, dtype=np.float64)
    top = sigma_max if sigma_max > 0 else float(ladder.max())
    bottom = sigma_min if sigma_min > 0 else float(ladder.min())
    if not 0 < bottom <= top:
        raise ParameterError(
            f"sampler {sampler!r}: sigma_min={bottom:g}, sigma_max={top:g} is not a ladder; "
            "expected sigma_min <= sigma_max"
        )
    return np.append(np.geomspace(top, bottom, n_steps), 0.0)


def reverse_sde_coefficients(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euler-Maruyama of the reverse SDE dx = -s dtau + dW (tau = sigma^2 decreasing) on ``grid``: step i is
    x <- x + dtau_i s(x, sigma_i) + noise_i z, dtau_i = sigma_i^2 - sigma_{i+1}^2, noise_i = sqrt(dtau_i), except the
    last step (to sigma = 0), which adds no noise: it is Tweedie's denoiser x + sigma^2 s, as score SDE ends."""
    dtau = grid[:-1] ** 2 - grid[1:] ** 2
    noise = np.sqrt(dtau)
    noise[-1] = 0.0
    return dtau, noise
