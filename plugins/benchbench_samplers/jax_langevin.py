"""Langevin samplers in JAX: the whole chain is one jit-compiled ``lax.scan`` over the unrolled schedule.

The model is used through its pure ``apply(params, x, sigma)``, so the score network is compiled into the
loop. Each step splits the key once (``key, sub = split(key)``) and draws ``normal(sub, x.shape)``; the
numpy reference fed the same draws reproduces the chain. Compilation happens once per (model, number of
steps, particle shape) and is counted in the trial's sampling time. A model whose architecture says its loops
compile badly (``compiled_loops`` false: the convolutional network) runs one jitted step per dispatch instead,
on the same keys (:func:`run_chain`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchbench_samplers.schedule import Level, annealed_plan, langevin_plan, per_step


@partial(jax.jit, static_argnums=0)
def _scan(step: Callable, params, carry, xs):
    return jax.lax.scan(lambda c, x: (step(params, c, x), None), carry, xs)[0]


@partial(jax.jit, static_argnums=0, donate_argnums=2)
def _one_step(step: Callable, params, carry, x):
    return step(params, carry, x)


def run_chain(model, step: Callable, carry: Any, xs: tuple[np.ndarray, ...]) -> Any:
    """The final ``carry`` of ``carry = step(params, carry, row)`` over the rows of ``xs``: one jitted
    ``lax.scan``, or one jitted step per dispatch where the model says ``compiled_loops = False`` (XLA's CPU
    backend runs convolutions several times slower in loop bodies; see
    :class:`benchbench_jax.convnet.ConvArchitecture`). A model without the attribute is scanned.

    ``step`` is a static argument: it must hash by value (a frozen dataclass over ``model.apply``), so every
    model of one architecture shares the compiled programs.
    """
    if getattr(model, "compiled_loops", True):
        return _scan(step, model.params, carry, xs)
    # xs stay on the host (numpy): indexing a device array would be a dispatch of its own
    for i in range(len(xs[0])):
        carry = _one_step(step, model.params, carry, tuple(row[i] for row in xs))
    return carry


@dataclass(frozen=True)
class _LangevinStep:
    apply: Callable
    conditional: bool

    def __call__(self, params, carry, schedule):
        x, key = carry
        sigma, alpha = schedule
        key, sub = jax.random.split(key)
        sigma_batch = jnp.full((x.shape[0],), sigma, dtype=x.dtype) if self.conditional else None
        score = self.apply(params, x, sigma_batch)
        noise = jax.random.normal(sub, x.shape, dtype=x.dtype)
        return x + 0.5 * alpha * score + jnp.sqrt(alpha) * noise, key


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
    step = _LangevinStep(model.apply, conditional)
    schedule = (np.asarray(sigmas, dtype=dtype), np.asarray(alphas, dtype=dtype))
    x, _ = run_chain(model, step, (jnp.asarray(x0, dtype=dtype), jax.random.key(seed)), schedule)
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
