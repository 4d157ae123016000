"""The numpy reference Langevin samplers: any score callable, e.g. a dataset's exact score.

They run the same :mod:`benchbench_samplers.schedule` as the torch and JAX samplers, drawing their
Gaussian noise from ``normal(shape)``, so a test can feed them the very numbers a backend's generator
draws and compare the chains value for value. Registered under the backend name ``numpy`` too: they
need nothing but ``model.score``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchbench_samplers.schedule import Level, annealed_plan, langevin_plan, reverse_sde_coefficients, sde_grid

ScoreFn = Callable[[np.ndarray, float | None], np.ndarray]
Normal = Callable[[tuple[int, ...]], np.ndarray]


def run_levels(score: ScoreFn, x0: np.ndarray, levels: list[Level], normal: Normal) -> np.ndarray:
    """Unadjusted Langevin, x <- x + (alpha/2) s(x, sigma) + sqrt(alpha) z, z ~ N(0, I), level by level.

    This is Algorithm 1 of Song & Ermon (2019) and the update of their toy code; their image code writes
    the same step as x + a s + sqrt(2a) z, i.e. a = alpha/2 (its ``step_lr`` is half our ``eps``).
    """
    x = np.array(x0, dtype=np.float64)
    for level in levels:
        drift, scale = 0.5 * level.step_size, np.sqrt(level.step_size)
        for _ in range(level.n_steps):
            x = x + drift * score(x, level.sigma) + scale * normal(x.shape)
    return x


def _normal(seed: int) -> Normal:
    rng = np.random.default_rng(seed)
    return lambda shape: rng.standard_normal(shape)


def langevin(model, x0: np.ndarray, seed: int, eps: float, n_steps: int, normal: Normal | None = None) -> np.ndarray:
    """Plain Langevin with ``model.score`` (noise-conditional models at their smallest sigma)."""
    return run_levels(model.score, x0, langevin_plan(model, eps, n_steps), normal or _normal(seed))


def annealed_langevin(
    model,
    x0: np.ndarray,
    seed: int,
    eps: float,
    steps_per_level: int,
    sigma_max: float,
    sigma_min: float,
    n_sigmas: int,
    normal: Normal | None = None,
) -> np.ndarray:
    """Annealed Langevin (NCSN): see :func:`benchbench_samplers.schedule.annealed_plan`."""
    levels = annealed_plan(model, eps, steps_per_level, sigma_max, sigma_min, n_sigmas)
    return run_levels(model.score, x0, levels, normal or _normal(seed))


def reverse_sde(
    model, x0: np.ndarray, seed: int, n_steps: int, sigma_max: float, sigma_min: float, normal: Normal | None = None
) -> np.ndarray:
    """The reverse SDE by Euler-Maruyama (Song et al. 2021) from x0 + sigma_0 z, on
    :func:`benchbench_samplers.schedule.sde_grid`; one ``normal`` draw for the start, then one per step."""
    normal = normal or _normal(seed)
    grid = sde_grid(model, "reverse-sde", n_steps, sigma_max, sigma_min)
    dtau, noise = reverse_sde_coefficients(grid)
    x = np.array(x0, dtype=np.float64) + grid[0] * normal(np.shape(x0))
    for sigma, step, scale in zip(grid[:-1], dtau, noise):
        x = x + step * model.score(x, float(sigma)) + scale * normal(x.shape)
    return x


def probability_flow(
    model, x0: np.ndarray, seed: int, n_steps: int, sigma_max: float, sigma_min: float, normal: Normal | None = None
) -> np.ndarray:
    """The probability-flow ODE dx/dsigma = -sigma s(x, sigma) by Heun's method (Karras et al. 2022, Algorithm 1),
    from x0 + sigma_0 z; the last step, to sigma = 0, is Euler's (Tweedie's denoiser)."""
    normal = normal or _normal(seed)
    grid = sde_grid(model, "probability-flow", n_steps, sigma_max, sigma_min)
    x = np.array(x0, dtype=np.float64) + grid[0] * normal(np.shape(x0))
    for sigma, after in zip(grid[:-1], grid[1:]):
        slope = -sigma * model.score(x, float(sigma))
        euler = x + (after - sigma) * slope
        x = euler if after == 0 else x + (after - sigma) * 0.5 * (slope - after * model.score(euler, float(after)))
    return x
