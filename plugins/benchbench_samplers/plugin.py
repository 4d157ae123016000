"""Registers the built-in samplers through the public ``register_samplers`` hook.

Each sampler has a torch and a JAX implementation that run on the model's device, and a numpy one that
needs only ``model.score`` (the reference the other two are tested against).
"""

from __future__ import annotations

from benchbench import hookimpl
from benchbench.params import Param
from benchbench.specs import Sampler


def _implementations(function: str) -> dict[str, str]:
    return {
        "torch": f"benchbench_samplers.torch_langevin:{function}",
        "jax": f"benchbench_samplers.jax_langevin:{function}",
        "numpy": f"benchbench_samplers.reference:{function}",
    }


LANGEVIN = Sampler(
    name="langevin",
    description="unadjusted Langevin, x <- x + (eps/2) s(x) + sqrt(eps) z (noise-conditional models at their "
    "smallest sigma)",
    samplers=_implementations("langevin"),
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
    params=(
        Param("eps", 0.0, "step size at the smallest sigma; 0 = auto, 0.1 sigma_L^2", low=0.0),
        Param("steps_per_level", 100, "updates per sigma level (T)", low=1),
        Param("sigma_max", 0.0, "largest sigma of an explicit ladder (with n_sigmas > 0)", low=0.0),
        Param("sigma_min", 0.0, "smallest sigma of an explicit ladder (with n_sigmas > 0)", low=0.0),
        Param("n_sigmas", 0, "levels of an explicit geometric ladder; 0 = the model's own sigmas", low=0),
    ),
)


@hookimpl
def register_samplers(register):
    register(LANGEVIN)
    register(ANNEALED_LANGEVIN)
