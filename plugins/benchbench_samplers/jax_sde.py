"""Reverse-SDE and probability-flow samplers in JAX: each is one jit-compiled ``lax.scan`` over the sigma grid.

The noise is drawn as :mod:`benchbench_samplers.jax_langevin` draws it (``key, sub = split(key)`` then
``normal(sub)``): once for the start, then once per SDE step, so the numpy reference fed the same draws
reproduces the chain.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from benchbench_samplers.jax_langevin import _dtype
from benchbench_samplers.schedule import reverse_sde_coefficients, sde_grid


def _start(x0, key, sigma):
    key, sub = jax.random.split(key)
    return x0 + sigma * jax.random.normal(sub, x0.shape, dtype=x0.dtype), key


@partial(jax.jit, static_argnames=("apply",))
def _reverse_sde(apply, params, x0, key, sigmas, dtau, noise):
    def step(carry, schedule):
        x, key = carry
        sigma, dt, scale = schedule
        key, sub = jax.random.split(key)
        score = apply(params, x, jnp.full((x.shape[0],), sigma, dtype=x.dtype))
        return (x + dt * score + scale * jax.random.normal(sub, x.shape, dtype=x.dtype), key), None

    x, key = _start(x0, key, sigmas[0])
    (x, _), _ = jax.lax.scan(step, (x, key), (sigmas, dtau, noise))
    return x


@partial(jax.jit, static_argnames=("apply",))
def _probability_flow(apply, params, x0, key, sigmas, afters):
    def score(x, sigma):
        return apply(params, x, jnp.full((x.shape[0],), sigma, dtype=x.dtype))

    def step(x, schedule):
        sigma, after = schedule
        slope = -sigma * score(x, sigma)
        euler = x + (after - sigma) * slope
        # sigma = 0 has no score (c_noise = ln sigma): the last step evaluates at sigma instead and keeps Euler's
        corrected = x + (after - sigma) * 0.5 * (slope - after * score(euler, jnp.where(after > 0, after, sigma)))
        return jnp.where(after > 0, corrected, euler), None

    x, _ = _start(x0, key, sigmas[0])
    x, _ = jax.lax.scan(step, x, (sigmas, afters))
    return x


def reverse_sde(model, x0: np.ndarray, seed: int, n_steps: int, sigma_max: float, sigma_min: float) -> np.ndarray:
    """Euler-Maruyama of the reverse SDE: see :func:`benchbench_samplers.reference.reverse_sde`."""
    grid = sde_grid(model, "reverse-sde", n_steps, sigma_max, sigma_min)
    dtau, noise = reverse_sde_coefficients(grid)
    dtype = _dtype(model.params)
    arrays = [jnp.asarray(a, dtype=dtype) for a in (grid[:-1], dtau, noise)]
    x = _reverse_sde(model.apply, model.params, jnp.asarray(x0, dtype=dtype), jax.random.key(seed), *arrays)
    return np.asarray(x)


def probability_flow(model, x0: np.ndarray, seed: int, n_steps: int, sigma_max: float, sigma_min: float) -> np.ndarray:
    """Heun on dx/dsigma = -sigma s: see :func:`benchbench_samplers.reference.probability_flow`."""
    grid = sde_grid(model, "probability-flow", n_steps, sigma_max, sigma_min)
    dtype = _dtype(model.params)
    x = _probability_flow(
        model.apply,
        model.params,
        jnp.asarray(x0, dtype=dtype),
        jax.random.key(seed),
        jnp.asarray(grid[:-1], dtype=dtype),
        jnp.asarray(grid[1:], dtype=dtype),
    )
    return np.asarray(x)
