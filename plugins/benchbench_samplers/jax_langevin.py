"""Langevin samplers in JAX: the whole chain is one jit-compiled ``lax.scan`` over the unrolled schedule.

The model is used through its pure ``apply(params, x, sigma)``, so the score network is compiled into the
loop. Each step splits the key once (``key, sub = split(key)``) and draws ``normal(sub, x.shape)``; the
numpy reference fed the same draws reproduces the chain. Compilation happens once per (model, number of
steps, particle shape) and is counted in the trial's sampling time.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from benchbench_samplers.schedule import Level, annealed_plan, langevin_plan, per_step


@partial(jax.jit, static_argnames=("apply", "conditional"))
def _chain(apply, params, x0, key, sigmas, alphas, conditional: bool):
    def step(carry, schedule):
        x, key = carry
        sigma, alpha = schedule
        key, sub = jax.random.split(key)
        sigma_batch = jnp.full((x.shape[0],), sigma, dtype=x.dtype) if conditional else None
        score = apply(params, x, sigma_batch)
        noise = jax.random.normal(sub, x.shape, dtype=x.dtype)
        return (x + 0.5 * alpha * score + jnp.sqrt(alpha) * noise, key), None

    (x, _), _ = jax.lax.scan(step, (x0, key), (sigmas, alphas))
    return x


def _dtype(params) -> jnp.dtype:
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(params) if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]
    return jnp.result_type(leaves[0]) if leaves else jnp.result_type(float)


def run_levels(model, x0: np.ndarray, levels: list[Level], seed: int) -> np.ndarray:
    """x <- x + (alpha/2) s(x, sigma) + sqrt(alpha) z in the dtype of the model's parameters.

    The score is passed one sigma per particle, shape (n,), the convention noise-conditional losses train with.
    """
    dtype = _dtype(model.params)
    sigmas, alphas = per_step(levels)
    conditional = levels[0].sigma is not None
    x = _chain(
        model.apply,
        model.params,
        jnp.asarray(x0, dtype=dtype),
        jax.random.key(seed),
        jnp.asarray(sigmas, dtype=dtype),
        jnp.asarray(alphas, dtype=dtype),
        conditional=conditional,
    )
    return np.asarray(x)


def langevin(model, x0: np.ndarray, seed: int, eps: float, n_steps: int) -> np.ndarray:
    """Plain Langevin (noise-conditional models at their smallest sigma)."""
    return run_levels(model, x0, langevin_plan(model, eps, n_steps), seed)


def annealed_langevin(
    model,
    x0: np.ndarray,
    seed: int,
    eps: float,
    steps_per_level: int,
    sigma_max: float,
    sigma_min: float,
    n_sigmas: int,
) -> np.ndarray:
    """Annealed Langevin (NCSN): see :func:`benchbench_samplers.schedule.annealed_plan`."""
    levels = annealed_plan(model, eps, steps_per_level, sigma_max, sigma_min, n_sigmas)
    return run_levels(model, x0, levels, seed)
