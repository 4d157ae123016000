"""Registers the built-in samplers (Langevin, annealed Langevin, reverse SDE, probability flow) through the public
``register_samplers`` hook.

Each sampler has a torch and a JAX implementation that run on the model's device, and a numpy one that
needs only ``model.score`` (the reference the other two are tested against).
"""

from __future__ import annotations

from benchbench import Param, Sampler, hookimpl


def _implementations(function: str, family: str = "langevin") -> dict[str, str]:
    return {
        "torch": f"benchbench_samplers.torch_{family}:{function}",
        "jax": f"benchbench_samplers.jax_{family}:{function}",
        "numpy": f"benchbench_samplers.reference:{function}",
    }


LANGEVIN = Sampler(
    name="langevin",
    description="unadjusted Langevin, x <- x + (eps/2) s(x) + sqrt(eps) z (noise-conditional models at their "
    "smallest sigma)",
    samplers=_implementations("langevin"),
    default_for="score",
    params=(
        Param("eps", 0.01, "step size", low=1e-12),
        Param("n_steps", 1000, "number of updates", low=1),
    ),
)

ANNEALED_LANGEVIN = Sampler(
    name="annealed-langevin",
    description="annealed Langevin (NCSN, Song & Ermon 2019): T steps per sigma level with step "
    "alpha_i = eps (sigma_i/sigma_L)^2, update x <- x + (alpha_i/2) s(x, sigma_i) + sqrt(alpha_i) z",
    samplers=_implementations("annealed_langevin"),
    default_for="noise_conditional",
    params=(
        Param("eps", 0.0, "step size at the smallest sigma; 0 = auto, 0.1 sigma_L^2", low=0.0),
        Param("steps_per_level", 100, "updates per sigma level (T)", low=1),
        Param("sigma_max", 0.0, "largest sigma of an explicit ladder (with n_sigmas > 0)", low=0.0),
        Param("sigma_min", 0.0, "smallest sigma of an explicit ladder (with n_sigmas > 0)", low=0.0),
        Param("n_sigmas", 0, "levels of an explicit geometric ladder; 0 = the model's own sigmas", low=0),
    ),
)


def _grid_params(n_steps: int) -> tuple[Param, ...]:
    return (
        Param(
            "n_steps", n_steps, "steps of the sigma grid, geometric from sigma_max to sigma_min, then one to 0", low=1
        ),
        Param("sigma_max", 0.0, "where the grid starts; 0 = the largest sigma of the model's ladder", low=0.0),
        Param("sigma_min", 0.0, "the last sigma before 0; 0 = the smallest of the model's ladder", low=0.0),
    )


REVERSE_SDE = Sampler(
    name="reverse-sde",
    description="score SDE's reverse SDE by Euler-Maruyama (Song et al. 2021), in the clock tau = sigma^2: from "
    "x0 + sigma_max z, x <- x + dtau s(x, sigma) + sqrt(dtau) z; noise-conditional models (any objective)",
    samplers=_implementations("reverse_sde", "sde"),
    params=_grid_params(1000),
)

PROBABILITY_FLOW = Sampler(
    name="probability-flow",
    description="the probability-flow ODE dx/dsigma = -sigma s(x, sigma) by Heun's method (Karras et al. 2022, "
    "Algorithm 1), deterministic after the start x0 + sigma_max z; noise-conditional models",
    samplers=_implementations("probability_flow", "sde"),
    params=_grid_params(100),
)


@hookimpl
def register_samplers(register):
    for sampler in (LANGEVIN, ANNEALED_LANGEVIN, REVERSE_SDE, PROBABILITY_FLOW):
        register(sampler)
