"""Registers the built-in objectives through the public ``register_objectives`` hook.

Convention for every objective: J(theta) = E[1/2 ||s(x)||^2 + tr(ds/dx)], the implicit score-matching
objective, equal to the Fisher divergence 1/2 E||s - grad log p||^2 minus a constant of the data. Each
backend implements the loss under the same function name with the same hyperparameters. Noise-conditional
objectives train s(x, sigma), the score of the data convolved with N(0, sigma^2 I) (see :mod:`benchbench.noise`
for how the VP process maps onto it), with the network preconditioning their params choose.
"""

from __future__ import annotations

from benchbench import Objective, Param, hookimpl
from benchbench.noise import PRECONDITIONINGS, WEIGHTINGS

_BIAS = "benchbench_objectives.bias"


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
            loss_independent="the cost: the same trace in blocks",
        ),
        Param(
            "method",
            "auto",
            "how the trace is computed; forward-tangent and weight-cycle are the built-in mlp's fast paths (auto "
            "takes the cheaper, weight-cycle at high d); loop is the d-autograd-call reference, for bench perf",
            choices=("auto", "forward-tangent", "weight-cycle", "jacfwd", "jacrev", "jvp-basis", "loop"),
            loss_independent="the cost: the same exact trace by another algorithm",
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
    expected_bias=f"{_BIAS}:denoising",
    reference="Vincent (2011), A connection between score matching and denoising autoencoders",
)

_NETWORK_PARAMS = (
    Param(
        "preconditioning",
        "score",
        "network and loss weight: score (EDM's c_skip/c_in/c_noise, out bounded at small sigma), edm (Karras et al. "
        "2022) or ncsn (F([x, ln sigma]) / sigma); see benchbench.noise.Preconditioning",
        choices=PRECONDITIONINGS,
        loss_independent="the network the backend builds (and edm's loss weight): the kit's models have none",
    ),
    Param(
        "sigma_data",
        1.0,
        "EDM's sigma_data: the data's standard deviation per coordinate",
        low=1e-6,
        loss_independent="the network's input and output scales (and edm's loss weight)",
    ),
)

_DIFFUSION_PARAMS = (
    Param("eps", 1e-5, "smallest training time: t ~ U(eps, 1)", low=1e-8, high=0.5),
    Param(
        "weighting",
        "sigma2",
        "lambda(t): sigma2 (lambda = sigma(t)^2, Song et al. 2021) or likelihood (lambda = g(t)^2)",
        choices=WEIGHTINGS,
    ),
)

_LEVELS = Param(
    "n_sigmas",
    10,
    "levels of the model's ladder: metrics per level, annealed samplers",
    low=1,
    loss_independent="the levels evaluated after training; training draws t continuously",
)

MULTISCALE = Objective(
    name="denoising-multiscale",
    description="NCSN: denoising at a geometric ladder of sigmas, noise-conditional s(x, sigma), EDM-style network",
    losses=_losses("multiscale_denoising_loss"),
    params=(
        Param("sigma_min", 0.01, "smallest noise level (the one metrics evaluate at)", low=1e-6),
        Param("sigma_max", 1.0, "largest noise level", low=1e-6),
        Param("n_sigmas", 10, "number of levels, geometric from sigma_max down to sigma_min", low=1),
        *_NETWORK_PARAMS,
    ),
    noise_conditional=True,
    biased=True,
    expected_bias=f"{_BIAS}:multiscale",
    reference="Song & Ermon (2019), Generative modeling by estimating gradients of the data distribution; "
    "Karras, Aittala, Aila & Laine (2022), Elucidating the design space of diffusion-based generative models",
)

DIFFUSION_VE = Objective(
    name="diffusion-ve",
    description="score SDE, variance exploding: t ~ U(eps, 1), x + sigma(t) z, sigma(t) geometric, lambda = sigma^2",
    losses=_losses("diffusion_ve_loss"),
    params=(
        Param("sigma_min", 0.01, "sigma(0), the level metrics evaluate at", low=1e-6),
        Param("sigma_max", 10.0, "sigma(1): about the largest distance between training points", low=1e-6),
        *_DIFFUSION_PARAMS,
        _LEVELS,
        *_NETWORK_PARAMS,
    ),
    noise_conditional=True,
    biased=True,
    expected_bias=f"{_BIAS}:diffusion_ve",
    noise_schedule="ve",
    reference="Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021), Score-based generative modeling through "
    "stochastic differential equations",
)

DIFFUSION_VP = Objective(
    name="diffusion-vp",
    description="score SDE, variance preserving: alpha(t) x + sigma(t) z, linear beta(t), learned as x + "
    "(sigma/alpha) z, lambda = sigma^2",
    losses=_losses("diffusion_vp_loss"),
    params=(
        Param("beta_min", 0.1, "beta(0)", low=0.0),
        Param("beta_max", 20.0, "beta(1)", low=0.0),
        *_DIFFUSION_PARAMS,
        Param(
            "t_end",
            1e-3,
            "where samplers stop and metrics evaluate (score SDE's sampling eps)",
            low=1e-8,
            loss_independent="where the model is evaluated and sampled after training",
        ),
        _LEVELS,
        *_NETWORK_PARAMS,
    ),
    noise_conditional=True,
    biased=True,
    expected_bias=f"{_BIAS}:diffusion_vp",
    noise_schedule="vp",
    reference="Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021), Score-based generative modeling through "
    "stochastic differential equations; Ho, Jain & Abbeel (2020), DDPM",
)

OBJECTIVES = (EXACT, SLICED, HUTCHINSON, DENOISING, MULTISCALE, DIFFUSION_VE, DIFFUSION_VP)


@hookimpl
def register_objectives(register):
    for objective in OBJECTIVES:
        register(objective)
