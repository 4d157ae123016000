"""Score-matching losses in JAX: pure functions ``loss(score_fn, x, key, **hparams) -> scalar``.

Convention (shared with the torch backend): J(theta) = E[1/2 ||s(x)||^2 + tr(ds/dx)], the implicit
score-matching objective, equal to the Fisher divergence 1/2 E||s - grad log p||^2 minus a constant of the
data. Each stochastic loss is a thin sampler of probes or noise around a deterministic ``*_core`` function;
the cores are what the torch-vs-JAX parity test feeds identical randomness.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from benchbench import ParameterError
from benchbench.noise import Preconditioning, diffusion_sigma, diffusion_weight, sigma_ladder
from benchbench_jax.autodiff import directional_vjp, score_and_trace

PROJECTIONS = ("gaussian", "rademacher", "sphere")

# v'(ds/dx)v is taken in reverse mode (one vjp per probe, v'J, then dotted with v) rather than forward mode
# (one jvp per probe, Jv): reverse mode was the faster in every interleaved comparison. Median / min ms of a
# jitted sliced train step (loss + grad + Adam, MLP d-128-128-128-d softplus, batch 128, float32, the shared
# 2-core CPU, 25 rounds of 50 steps at load ~5.5): d=16 jvp 2.05 / 1.93, vjp 1.86 / 1.74; d=64 jvp 1.77 / 1.39,
# vjp 1.45 / 1.23. At load ~3: d=16 1.20 vs 1.19, d=64 1.53 vs 1.44 (medians).
directional = directional_vjp


def exact_loss(score_fn: Callable, x: jax.Array, key: jax.Array, chunk: int = 0, method: str = "auto") -> jax.Array:
    """Implicit score matching with the exact trace (Hyvarinen 2005): mean of 1/2 ||s(x)||^2 + tr(ds/dx).

    ``method`` chooses how the trace is computed (see :func:`benchbench_jax.autodiff.score_and_trace`):
    every method gives the same number; ``chunk`` > 0 bounds memory to that many basis vectors at a time.
    """
    scores, trace = score_and_trace(score_fn, x, chunk, method)
    return jnp.mean(0.5 * jnp.sum(scores**2, axis=1) + trace)


def projections(key: jax.Array, shape: tuple[int, ...], kind: str, dtype) -> jax.Array:
    """Probe vectors v with E[v v'] = I along the last axis.

    ``sphere`` is uniform on the sphere of radius sqrt(d), not the unit sphere: the reference sliced score
    matching code normalises to unit norm, which silently divides the trace term by d.
    """
    if kind == "gaussian":
        return jax.random.normal(key, shape, dtype)
    if kind == "rademacher":
        return jax.random.rademacher(key, shape, dtype)
    if kind == "sphere":
        v = jax.random.normal(key, shape, dtype)
        return v * (shape[-1] ** 0.5 / jnp.linalg.norm(v, axis=-1, keepdims=True))
    raise ParameterError(f"projection={kind!r} is not valid; expected one of {', '.join(PROJECTIONS)}")


def sliced_core(score_fn: Callable, x: jax.Array, v: jax.Array) -> jax.Array:
    """Mean over probes ``v`` ``(m, n, d)`` and examples of 1/2 (v's)^2 + v'(ds/dx)v."""
    scores, jv = directional(score_fn, x, v)
    projected = jnp.einsum("mnd,nd->mn", v, scores)
    return jnp.mean(0.5 * projected**2 + jnp.einsum("mnd,mnd->mn", v, jv))


def sliced_loss(
    score_fn: Callable, x: jax.Array, key: jax.Array, n_projections: int = 1, projection: str = "gaussian"
) -> jax.Array:
    """Sliced score matching (Song, Garg, Shi & Ermon 2019): E_v[1/2 (v's)^2 + v'(ds/dx)v].

    Unbiased for J because E[vv'] = I turns both terms into their full-dimensional counterparts.
    """
    return sliced_core(score_fn, x, projections(key, (n_projections, *x.shape), projection, x.dtype))


def hutchinson_core(score_fn: Callable, x: jax.Array, v: jax.Array) -> jax.Array:
    """Mean over examples of 1/2 ||s||^2 + the mean over probes ``v`` ``(m, n, d)`` of v'(ds/dx)v."""
    scores, jv = directional(score_fn, x, v)
    return jnp.mean(0.5 * jnp.sum(scores**2, axis=1) + jnp.mean(jnp.einsum("mnd,mnd->mn", v, jv), axis=0))


def hutchinson_loss(
    score_fn: Callable, x: jax.Array, key: jax.Array, n_projections: int = 1, projection: str = "gaussian"
) -> jax.Array:
    """Hutchinson's trace estimator inside J: E[1/2 ||s||^2 + v'(ds/dx)v] (SSM-VR in Song et al. 2019).

    The norm term is exact, so only the trace is estimated: lower variance than :func:`sliced_loss`.
    """
    return hutchinson_core(score_fn, x, projections(key, (n_projections, *x.shape), projection, x.dtype))


def denoising_core(score_fn: Callable, x: jax.Array, z: jax.Array, sigma: float) -> jax.Array:
    """1/2 mean ||s(x + sigma z) + z / sigma||^2 for given standard normal noise ``z``."""
    residual = score_fn(x + sigma * z) + z / sigma
    return 0.5 * jnp.mean(jnp.sum(residual**2, axis=1))


def denoising_loss(score_fn: Callable, x: jax.Array, key: jax.Array, sigma: float = 0.1) -> jax.Array:
    """Denoising score matching (Vincent 2011): 1/2 E||s(x + sigma z) + z / sigma||^2.

    Its minimiser is the score of the data convolved with N(0, sigma^2 I), not of the data itself.
    """
    return denoising_core(score_fn, x, jax.random.normal(key, x.shape, x.dtype), sigma)


def multiscale_denoising_core(
    score_fn: Callable, x: jax.Array, z: jax.Array, sigmas: jax.Array, weights: jax.Array | float = 1.0
) -> jax.Array:
    """1/2 mean of weight sigma^2 ||s(x + sigma z, sigma) + z / sigma||^2 with one ``sigmas`` (and ``weights``)
    entry per example; every noise-conditional objective here is this core with its own draws of sigma."""
    scale = sigmas[:, None]
    residual = scale * score_fn(x + scale * z, sigmas) + z
    return 0.5 * jnp.mean(weights * jnp.sum(residual**2, axis=1))


def multiscale_denoising_loss(
    score_fn: Callable,
    x: jax.Array,
    key: jax.Array,
    sigma_min: float = 0.01,
    sigma_max: float = 1.0,
    n_sigmas: int = 10,
    preconditioning: str = "score",
    sigma_data: float = 1.0,
) -> jax.Array:
    """Noise-conditional multi-scale DSM (NCSN, Song & Ermon 2019), weighted per level as the network is
    preconditioned (:class:`benchbench.noise.Preconditioning`): ``edm`` Karras et al. (2022), else sigma^2.

    One sigma per example, drawn uniformly from the ladder, as in the reference code.
    """
    level_key, noise_key = jax.random.split(key)
    ladder = jnp.asarray(sigma_ladder(sigma_min, sigma_max, n_sigmas), x.dtype)
    sigmas = ladder[jax.random.randint(level_key, (x.shape[0],), 0, n_sigmas)]
    weights = Preconditioning(preconditioning, sigma_data).loss_weight(sigmas)
    return multiscale_denoising_core(score_fn, x, jax.random.normal(noise_key, x.shape, x.dtype), sigmas, weights)


def diffusion_core(schedule: str, score_fn: Callable, x: jax.Array, t: jax.Array, z: jax.Array, hparams) -> jax.Array:
    """Song et al. (2021), eq. 7, at given times ``t`` (n,) and noise ``z``, in the scaled coordinates of
    :mod:`benchbench.noise`: x~ = x + sigma(t) z, weight w(t) on 1/2 ||sigma s + z||^2."""
    sigmas = diffusion_sigma(schedule, t, hparams, jnp)
    weights = diffusion_weight(schedule, hparams["weighting"], t, hparams, jnp)
    return multiscale_denoising_core(score_fn, x, z, sigmas, weights)


def _diffusion_loss(schedule: str, score_fn: Callable, x: jax.Array, key: jax.Array, hparams) -> jax.Array:
    time_key, noise_key = jax.random.split(key)
    t = jax.random.uniform(time_key, (x.shape[0],), x.dtype, hparams["eps"], 1.0)
    return diffusion_core(schedule, score_fn, x, t, jax.random.normal(noise_key, x.shape, x.dtype), hparams)


def diffusion_ve_loss(
    score_fn: Callable,
    x: jax.Array,
    key: jax.Array,
    sigma_min: float = 0.01,
    sigma_max: float = 10.0,
    eps: float = 1e-5,
    weighting: str = "sigma2",
    n_sigmas: int = 10,
    preconditioning: str = "score",
    sigma_data: float = 1.0,
) -> jax.Array:
    """Score SDE, VE (Song et al. 2021): t ~ U(eps, 1), x~ = x + sigma(t) z, sigma(t) geometric in t; lambda =
    sigma^2 or likelihood weighting. ``n_sigmas``, ``preconditioning``, ``sigma_data`` shape the model only."""
    hparams = {"sigma_min": sigma_min, "sigma_max": sigma_max, "eps": eps, "weighting": weighting}
    return _diffusion_loss("ve", score_fn, x, key, hparams)


def diffusion_vp_loss(
    score_fn: Callable,
    x: jax.Array,
    key: jax.Array,
    beta_min: float = 0.1,
    beta_max: float = 20.0,
    eps: float = 1e-5,
    weighting: str = "sigma2",
    t_end: float = 1e-3,
    n_sigmas: int = 10,
    preconditioning: str = "score",
    sigma_data: float = 1.0,
) -> jax.Array:
    """Score SDE, VP (Song et al. 2021) in the scaled coordinates x_t / alpha(t) = x + sigma(t) z, sigma =
    sqrt(exp(B(t)) - 1) (see the torch loss of the same name for why this is eq. 7 exactly)."""
    hparams = {"beta_min": beta_min, "beta_max": beta_max, "eps": eps, "weighting": weighting}
    return _diffusion_loss("vp", score_fn, x, key, hparams)
