"""Generic JAX autodiff for score matching: Jacobian traces and directional derivatives of any score function.

These work for any ``score_fn(x) -> (n, d)`` whose rows depend only on their own example (no batch
statistics), which is what lets one batched ``jvp`` with the basis vector e_k in every row return column k of
every example's Jacobian. Models may offer faster paths (the MLP's forward tangent propagation and its
weight-cycle trace in :mod:`benchbench_jax.models`); :func:`score_and_trace` chooses between them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from benchbench import ParameterError
from benchbench.mlp import FAST_TRACES, fast_trace_method

ScoreFn = Callable[[jax.Array], jax.Array]

TRACE_METHODS = ("auto", "forward-tangent", "weight-cycle", "jacfwd", "jacrev", "jvp-basis", "loop")


def basis_blocks(dim: int, chunk: int, dtype) -> jax.Array:
    """The standard basis of R^dim as ``(n_blocks, block, dim)``; ``chunk`` <= 0 means one block of all ``dim``.

    When ``chunk`` does not divide ``dim`` the last block is padded with zero vectors: a zero tangent adds
    nothing to a trace, so no block needs special-casing (``one_hot`` of an index >= dim is the zero vector).
    """
    size = dim if chunk <= 0 or chunk >= dim else chunk
    n_blocks = -(-dim // size)
    return jax.nn.one_hot(jnp.arange(n_blocks * size).reshape(n_blocks, size), dim, dtype=dtype)


def sum_over_blocks(block_fn: Callable[[jax.Array], jax.Array], blocks: jax.Array) -> jax.Array:
    """``sum_b block_fn(blocks[b])``, one block at a time when there are several.

    ``lax.map`` runs the blocks sequentially so only one block's tangents live at once, and
    ``jax.checkpoint`` makes the backward pass recompute each block instead of storing all their
    residuals — without it the gradient would keep every block alive and chunking would bound nothing.
    """
    if blocks.shape[0] == 1:
        return block_fn(blocks[0])
    return jax.lax.map(jax.checkpoint(block_fn), blocks).sum(axis=0)


def _trace_forward(score_fn: ScoreFn, x: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array]:
    """tr(ds/dx) from batched jvps along basis vectors (forward mode; the primal is shared by every block)."""
    scores, push = jax.linearize(score_fn, x)

    def block_trace(block: jax.Array) -> jax.Array:
        columns = jax.vmap(lambda e: push(jnp.broadcast_to(e, x.shape)))(block)  # (k, n, d)
        return jnp.einsum("knd,kd->n", columns, block)

    return scores, sum_over_blocks(block_trace, basis_blocks(x.shape[1], chunk, x.dtype))


def _trace_reverse(score_fn: ScoreFn, x: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array]:
    """tr(ds/dx) from batched vjps along basis vectors (reverse mode; one forward pass, k backward passes)."""
    scores, pull = jax.vjp(score_fn, x)

    def block_trace(block: jax.Array) -> jax.Array:
        rows = jax.vmap(lambda e: pull(jnp.broadcast_to(e, x.shape))[0])(block)  # (k, n, d)
        return jnp.einsum("knd,kd->n", rows, block)

    return scores, sum_over_blocks(block_trace, basis_blocks(x.shape[1], chunk, x.dtype))


def _trace_jacfwd(score_fn: ScoreFn, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """tr(ds/dx) from JAX's own per-example ``jacfwd`` under ``vmap``: the full d x d Jacobian, then its diagonal."""
    jacobians = jax.vmap(jax.jacfwd(lambda row: score_fn(row[None])[0]))(x)
    return score_fn(x), jnp.trace(jacobians, axis1=1, axis2=2)


def _trace_loop(score_fn: ScoreFn, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The reference approach of the original score-matching code: a Python loop of d backward passes.

    It unrolls into d vjps under ``jit``, so compile time grows with d; it exists for ``bench perf``.
    """
    scores, pull = jax.vjp(score_fn, x)
    diagonal = [pull(jnp.zeros_like(x).at[:, i].set(1))[0][:, i] for i in range(x.shape[1])]
    return scores, sum(diagonal)


def score_and_trace(
    score_fn: ScoreFn, x: jax.Array, chunk: int = 0, method: str = "auto"
) -> tuple[jax.Array, jax.Array]:
    """Scores ``(n, d)`` and the exact trace of their Jacobian ``(n,)``.

    ``auto`` takes the model's fast path when ``score_fn`` offers one (an attribute ``tangent_trace(x, chunk)
    -> (scores, trace)`` or ``cyclic_trace(x)``, the names the torch backend uses too; the cheaper by
    :func:`benchbench.mlp.cheaper_fast_trace` of ``score_fn.mlp_shape`` when it offers both) and batched reverse mode
    (``jacrev``) otherwise.
    Median ms of a jitted exact train step, MLP d-128-128-128-d softplus, batch 128, float32, measured side by
    side on the shared 2-core CPU at load ~7, d=16 / d=64: forward-tangent 6.7 / 48, jacrev 8.0 / 64, loop
    8.2 / 74, jvp-basis 11.0 / 75, jacfwd 17.5 / 96 (at load ~3 forward-tangent took 6.6 / 28). For the energy
    MLP (no fast path; forward- or reverse-over-reverse) jacrev and jvp-basis were within noise (d=16: 31 / 26
    ms median, 21 / 23 min), so reverse mode is the generic default. weight-cycle costs about (depth - 2)
    width^3 per example instead of forward-tangent's d (depth - 1) width^2, so ``auto`` takes it from d = 66
    at width 128, depth 3, batch 128 (MNIST's d = 784, say); one rough run there (``bench perf``, 5 steps,
    one repeat, default threads, the shared 2-core CPU at load ~3.5): 82 ms / step against forward-tangent's 714.
    ``chunk`` > 0 bounds memory to ``chunk`` basis vectors at a time, the backward pass included;
    ``jacfwd`` and ``loop`` do not chunk (``jacfwd`` with ``chunk`` > 0 uses the chunked forward path), nor does
    ``weight-cycle``, which has no d-sized tangents and keeps about 2 (depth - 1) arrays of n x width^2.
    """
    if method not in TRACE_METHODS:
        raise ParameterError(f"exact: method={method!r} is not valid; expected one of {', '.join(TRACE_METHODS)}")
    if method == "auto":
        method = fast_trace_method(score_fn, x.shape[0]) or "jacrev"
    if method in FAST_TRACES:
        fast = getattr(score_fn, FAST_TRACES[method], None)
        if fast is None:
            raise ParameterError(
                f"exact: method={method!r} needs a model that offers it (the JAX mlp score network); "
                f"{type(score_fn).__name__} does not; use method=auto, jacfwd, jacrev or jvp-basis"
            )
        return fast(x, chunk) if method == "forward-tangent" else fast(x)
    if method == "jacrev":
        return _trace_reverse(score_fn, x, chunk)
    if method == "loop":
        return _trace_loop(score_fn, x)
    if method == "jacfwd" and chunk <= 0:
        return _trace_jacfwd(score_fn, x)
    return _trace_forward(score_fn, x, chunk)


def directional_vjp(score_fn: ScoreFn, x: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Scores ``(n, d)`` and ``v' (ds/dx)`` for each probe in ``v`` ``(m, n, d)``: one forward pass, m vjps.

    The quadratic form v'(ds/dx)v is then a dot product with v; the losses module says why reverse mode.
    """
    scores, pull = jax.vjp(score_fn, x)
    return scores, jax.vmap(lambda u: pull(u)[0])(v)
