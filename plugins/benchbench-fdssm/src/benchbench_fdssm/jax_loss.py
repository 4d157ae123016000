"""FD-SSM in JAX: ``fd_sliced_loss(score_fn, x, key, eps, variant, n_projections) -> scalar``.

The same estimator as :mod:`benchbench_fdssm.torch_loss` (see its docstring for the formula and the scale):
a central difference over a step of norm eps replaces the Jacobian-vector product, so ``jax.grad`` of the
loss differentiates the score network once, never twice, and a network that only supports reverse mode
(a ``jax.custom_vjp``) trains with it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from benchbench import ParameterError

VARIANTS = ("ssm", "vr")


def directions(key: jax.Array, x: jax.Array, eps: float, n_projections: int) -> jax.Array:
    """Steps v ``(n_projections, n, d)`` uniform on the sphere of radius ``eps``."""
    u = jax.random.normal(key, (n_projections, *x.shape), x.dtype)
    return u * (eps / jnp.linalg.norm(u, axis=-1, keepdims=True))


def fd_sliced_core(score_fn: Callable, x: jax.Array, v: jax.Array, eps: float, variant: str) -> jax.Array:
    """The loss for given steps ``v`` ``(m, n, d)`` of norm ``eps`` (the torch formula, line for line)."""
    if variant not in VARIANTS:
        raise ParameterError(f"objective 'fd-sliced': variant={variant!r} is not valid; expected one of ssm, vr")
    m, (n, d) = v.shape[0], x.shape
    scores = score_fn(jnp.concatenate([x + v, x - v]).reshape(2 * m * n, d)).reshape(2, m, n, d)
    plus, minus = scores[0], scores[1]
    scale = d / eps**2
    trace = 0.5 * scale * jnp.sum((plus - minus) * v, axis=-1)
    mean_score = 0.5 * (plus + minus)
    if variant == "vr":
        norm = 0.5 * jnp.sum(mean_score**2, axis=-1)
    else:
        norm = 0.5 * scale * jnp.sum(mean_score * v, axis=-1) ** 2
    return jnp.mean(norm + trace)


def fd_sliced_loss(
    score_fn: Callable,
    x: jax.Array,
    key: jax.Array,
    eps: float = 0.1,
    variant: str = "ssm",
    n_projections: int = 1,
) -> jax.Array:
    """Finite-difference sliced score matching (Pang et al. 2020), unbiased for J on affine score models."""
    return fd_sliced_core(score_fn, x, directions(key, x, eps, n_projections), eps, variant)
