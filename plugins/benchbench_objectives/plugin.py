"""Registers the built-in objectives through the public ``register_objectives`` hook.

Convention for every objective: J(theta) = E[1/2 ||s(x)||^2 + tr(ds/dx)], the implicit score-matching
objective, equal to the Fisher divergence 1/2 E||s - grad log p||^2 minus a constant of the data. Each
backend implements the loss under the same function name with the same hyperparameters.
"""

from __future__ import annotations

from benchbench import hookimpl
from benchbench.params import Param
from benchbench.specs import Objective


def _losses(function: str) -> dict[str, str]:
    return {"torch": f"benchbench_torch.losses:{function}", "jax": f"benchbench_jax.losses:{function}"}


_PROJECTION_PARAMS = (
    Param("n_projections", 1, "random directions per example (the estimator's variance divides by it)", low=1),
    Param(
        "projection",
        "gaussian",
        "distribution of the directions, each with E[vv'] = I (sphere: radius sqrt(d))",
        choices=("gaussian", "rademacher", "sphere"),
    ),
)

EXACT = Objective(
    name="exact",
    description="Implicit score matching with the exact Jacobian trace, E[1/2||s||^2 + tr(ds/dx)]",
    losses=_losses("exact_loss"),
    params=(
        Param(
            "chunk",
            0,
            "basis vectors per block of the trace, to bound memory (0: all d at once)",
            low=0,
            cost_only=True,
        ),
        Param(
            "method",
            "auto",
            "how the trace is computed; loop is the d-autograd-call reference, for bench perf",
            choices=("auto", "forward-tangent", "jacfwd", "jacrev", "jvp-basis", "loop"),
            cost_only=True,
        ),
    ),
    reference="Hyvarinen (2005), Estimation of non-normalized statistical models by score matching",
    perf_reference={"method": "loop"},
)

SLICED = Objective(
    name="sliced",
    description="Sliced score matching, E_v[1/2 (v's)^2 + v'(ds/dx)v]: one Jacobian-vector product per direction",
    losses=_losses("sliced_loss"),
    params=_PROJECTION_PARAMS,
    reference="Song, Garg, Shi & Ermon (2019), Sliced score matching: a scalable approach to density and score "
    "estimation",
)

HUTCHINSON = Objective(
    name="hutchinson",
    description="Score matching with Hutchinson's trace estimator, E[1/2||s||^2 + v'(ds/dx)v] (SSM-VR)",
    losses=_losses("hutchinson_loss"),
    params=_PROJECTION_PARAMS,
    reference="Song, Garg, Shi & Ermon (2019), Sliced score matching (the variance-reduced SSM-VR); "
    "Hutchinson (1989), A stochastic estimator of the trace of the influence matrix",
)

DENOISING = Objective(
    name="denoising",
    description="Denoising score matching, 1/2 E||s(x + sigma z) + z / sigma||^2 (learns the sigma-smoothed score)",
    losses=_losses("denoising_loss"),
    params=(Param("sigma", 0.1, "noise standard deviation", low=1e-6),),
    biased=True,
    expected_bias="benchbench_objectives.bias:denoising_bias",
    reference="Vincent (2011), A connection between score matching and denoising autoencoders",
)

MULTISCALE = Objective(
    name="denoising-multiscale",
    description="NCSN: denoising at a geometric ladder of sigmas, sigma^2-weighted, noise-conditional s(x, sigma)",
    losses=_losses("multiscale_denoising_loss"),
    params=(
        Param("sigma_min", 0.01, "smallest noise level (the one metrics evaluate at)", low=1e-6),
        Param("sigma_max", 1.0, "largest noise level", low=1e-6),
        Param("n_sigmas", 10, "number of levels, geometric from sigma_max down to sigma_min", low=1),
    ),
    noise_conditional=True,
    biased=True,
    expected_bias="benchbench_objectives.bias:multiscale_bias",
    reference="Song & Ermon (2019), Generative modeling by estimating gradients of the data distribution",
)

OBJECTIVES = (EXACT, SLICED, HUTCHINSON, DENOISING, MULTISCALE)


@hookimpl
def register_objectives(register):
    for objective in OBJECTIVES:
        register(objective)
