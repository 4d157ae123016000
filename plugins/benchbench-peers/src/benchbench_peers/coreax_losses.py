"""coreax 1.0.0's sliced score matching (``SlicedScoreMatching``), its loss code behind benchbench's JAX signature.

coreax exposes no loss function: ``match(x)`` builds its own network and trains it. The adapter calls the
methods its train steps call, unchanged: ``_loss(score_network)(x, random_vectors)`` (``_train_step``) and
``_noise_conditional_loop_body`` summed by ``fori_loop`` (``_noise_conditional_train_step``), on benchbench's
score network instead of coreax's ``ScoreNetwork``.

Adaptations:

- Random vectors. ``match`` draws one set of vectors per data point before training and reuses it every epoch;
  here they are drawn from benchbench's key at every step (with coreax's default generator,
  ``jax.random.normal``), as every other objective does. The noise of the noise-conditional loop is left as
  shipped: ``random.key(0)`` inside the loop body (coreax's own comment: "This will generate the same set of
  random numbers on each function call").
- coreax's "noise conditioning" perturbs the data at ``num_noise_models`` levels sigma gamma^i and sums the
  sigma_i^2-weighted losses, but its network does not take sigma: a plain (not noise-conditional) objective here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

import jax
import jax.numpy as jnp
from coreax.score_matching import SlicedScoreMatching


def _matcher(key: jax.Array, variant: str, **options) -> SlicedScoreMatching:
    return SlicedScoreMatching(key, jax.random.normal, use_analytic=variant == "analytic", **options)


def ssm_loss(
    score_fn: Callable, x: jax.Array, key: jax.Array, num_random_vectors: int = 1, variant: str = "general"
) -> jax.Array:
    """``_train_step``'s loss: mean of v'(ds/dx)v + 1/2 (v's)^2 (general) or + 1/2 ||s||^2 (analytic)."""
    matcher = _matcher(key, variant, noise_conditioning=False, num_random_vectors=num_random_vectors)
    vectors = jax.random.normal(key, (x.shape[0], num_random_vectors, x.shape[1]), x.dtype)
    return matcher._loss(score_fn)(x, vectors).mean()


def ssm_noise_conditional_loss(
    score_fn: Callable,
    x: jax.Array,
    key: jax.Array,
    num_random_vectors: int = 1,
    variant: str = "general",
    num_noise_models: int = 100,
    sigma: float = 1.0,
    gamma: float = 0.95,
) -> jax.Array:
    """``_noise_conditional_train_step``'s loss: sum_i sigma_i^2 sliced(x + sigma_i z), sigma_i = sigma gamma^i."""
    matcher = _matcher(
        key,
        variant,
        noise_conditioning=True,
        num_random_vectors=num_random_vectors,
        num_noise_models=num_noise_models,
        sigma=sigma,
        gamma=gamma,
    )
    vectors = jax.random.normal(key, (x.shape[0], num_random_vectors, x.shape[1]), x.dtype)
    sigmas = sigma * gamma ** jnp.arange(num_noise_models)
    state = SimpleNamespace(apply_fn=lambda variables, y: score_fn(y))
    body = partial(
        matcher._noise_conditional_loop_body, state=state, params={}, x=x, random_vectors=vectors, sigmas=sigmas
    )
    return jax.lax.fori_loop(0, num_noise_models, body, jnp.zeros((), x.dtype))
