"""Backend-neutral facts about the built-in MLP score network d -> width^depth -> d.

Kept in the core (as :mod:`benchbench.image_models` is for ``--model conv``) so that the torch and JAX backends
choose their exact-trace algorithm by one count, without importing each other's framework.
"""

from __future__ import annotations

from typing import Any

FAST_TRACES = {"forward-tangent": "tangent_trace", "weight-cycle": "cyclic_trace"}
"""The MLP's fast trace paths, in both backends: method name -> the attribute of the score function that offers it
(``tangent_trace(x, chunk)``, ``cyclic_trace(x)``), beside ``mlp_shape`` = (dim, width, depth)."""


def fast_trace_method(score_fn: Any, batch: int) -> str | None:
    """The fast path ``method=auto`` takes: the one the score function offers, the cheaper by
    :func:`cheaper_fast_trace` if it offers both; None if it offers neither (generic autodiff then)."""
    offered = [method for method, name in FAST_TRACES.items() if hasattr(score_fn, name)]
    if len(offered) == 2:
        return cheaper_fast_trace(*score_fn.mlp_shape, batch)
    return offered[0] if offered else None


def cheaper_fast_trace(dim: int, width: int, depth: int, batch: int) -> str:
    """The fast trace path of an MLP d -> width^depth -> d with fewer multiply-adds per example.

    Both paths share the forward pass, and each one's backward costs a similar multiple of its forward, so
    the extra forward work decides. forward-tangent carries d tangents through every hidden layer after the
    first (width^2 each), plus two width-sized scalings: d ((depth - 1) width^2 + 2 width). weight-cycle
    forms M = W_1 W_o once per batch (d width^2, shared by ``batch`` examples; only its diagonal, d width, at
    depth 1), then per example one width^3 matmul per hidden layer beyond the second and about one width^2
    elementwise pass per layer. A count, not a timing: at depth >= 3 both are dominated by batched matmuls,
    so FLOPs compare like with like; at depth 1 or 2 weight-cycle has no per-example matmul and wins from d ~ 3.
    """
    tangent = dim * ((depth - 1) * width**2 + 2 * width)
    if depth == 1:
        cyclic = dim * width / batch + width
    else:
        cyclic = dim * width**2 / batch + (depth - 2) * width**3 + (depth + 1) * width**2
    return "weight-cycle" if cyclic < tangent else "forward-tangent"
