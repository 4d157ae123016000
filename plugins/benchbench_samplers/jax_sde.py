"""Reverse-SDE and probability-flow samplers in JAX: each is one jit-compiled ``lax.scan`` over the sigma grid
(:func:`benchbench_samplers.jax_langevin.run_chain`, which also dispatches a convolutional model step by step).

The noise is drawn as :mod:`benchbench_samplers.jax_langevin` draws it (``key, sub = split(key)`` then
``normal(sub)``): once for the start, then once per SDE step, so the numpy reference fed the same draws
reproduces the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from benchbench_samplers.jax_langevin import _dtype, run_chain
from benchbench_samplers.schedule import reverse_sde_coefficients, sde_grid


@jax.jit
def _start(x0, key, sigma):
    key, sub = jax.random.split(key)
    return x0 + sigma * jax.random.normal(sub, x0.shape, dtype=x0.dtype), key


@dataclass(frozen=True)
class _ReverseSdeStep:
    apply: Callable

    def __call__(self, params, carry, schedule):
        x, key = carry
        sigma, dt, scale = schedule
        key, sub = jax.random.split(key)
        score = self.apply(params, x, jnp.full((x.shape[0],), sigma, dtype=x.dtype))
        return x + dt * score + scale * jax.random.normal(sub, x.shape, dtype=x.dtype), key


@dataclass(frozen=True)
class _ProbabilityFlowStep:
    apply: Callable

    def __call__(self, params, x, schedule):
        sigma, after = schedule

        def score(x, sigma):
            return self.apply(params, x, jnp.full((x.shape[0],), sigma, dtype=x.dtype))

        slope = -sigma * score(x, sigma)
        euler = x + (after - sigma) * slope
        # sigma = 0 has no score (c_noise = ln sigma): the last step evaluates at sigma instead and keeps Euler's
        corrected = x + (after - sigma) * 0.5 * (slope - after * score(euler, jnp.where(after > 0, after, sigma)))
        return jnp.where(after > 0, corrected, euler)


def reverse_sde(model, x0: np.ndarray, seed: int, n_steps: int, sigma_max: float, sigma_min: float) -> np.ndarray:
    """Euler-Maruyama of the reverse SDE: see :func:`benchbench_samplers.reference.reverse_sde`."""
    grid = sde_grid(model, "reverse-sde", n_steps, sigma_max, sigma_min)
    dtau, noise = reverse_sde_coefficients(grid)
    dtype = _dtype(model.params)
    schedule = tuple(np.asarray(a, dtype=dtype) for a in (grid[:-1], dtau, noise))
    start = _start(jnp.asarray(x0, dtype=dtype), jax.random.key(seed), np.asarray(grid[0], dtype))
    x, _ = run_chain(model, _ReverseSdeStep(model.apply), start, schedule)
    return np.asarray(x)


def probability_flow(model, x0: np.ndarray, seed: int, n_steps: int, sigma_max: float, sigma_min: float) -> np.ndarray:
    """Heun on dx/dsigma = -sigma s: see :func:`benchbench_samplers.reference.probability_flow`."""
    grid = sde_grid(model, "probability-flow", n_steps, sigma_max, sigma_min)
    dtype = _dtype(model.params)
    schedule = (np.asarray(grid[:-1], dtype=dtype), np.asarray(grid[1:], dtype=dtype))
    x, _ = _start(jnp.asarray(x0, dtype=dtype), jax.random.key(seed), np.asarray(grid[0], dtype))
    return np.asarray(run_chain(model, _ProbabilityFlowStep(model.apply), x, schedule))
