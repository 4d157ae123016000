"""Jacobian-vector products and the exact Jacobian trace of any score function, for the torch losses.

``score_fn`` is any callable mapping a batch ``(n, d)`` to scores ``(n, d)`` that treats examples
independently (so the Jacobian of the batch is block-diagonal and one tangent per example is one
column of every example's Jacobian). A model may offer a faster path, looked up by name:

- ``score_fn.tangent_jvp(x, v)`` with ``v`` (n, k, d) -> ``(s(x), J v)`` with J v (n, k, d);
- ``score_fn.tangent_trace(x, chunk)`` -> ``(s(x), tr(ds/dx))`` with the trace (n,);
- ``score_fn.cyclic_trace(x)`` -> the same by the cyclic property of the trace, with ``score_fn.mlp_shape``
  ``(dim, width, depth)`` so that :func:`benchbench.mlp.cheaper_fast_trace` can choose between the two.

:class:`benchbench_torch.models.ScoreMLP` offers all of them. Every other callable goes through
autograd: ``torch.func`` (jvp, jacfwd, jacrev under vmap) for the trace, with a fallback to batched
reverse mode for a callable ``torch.func`` cannot transform (one calling ``torch.autograd.grad``
inside, say), and double backward for v'(ds/dx)v. Only ``method="loop"`` loops
over dimensions in Python: it is the reference the original score-matching code uses, kept so that
``bench perf`` can time it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.func import jacfwd, jacrev, jvp, vmap
from torch.utils.checkpoint import checkpoint

from benchbench import ParameterError
from benchbench.mlp import FAST_TRACES, fast_trace_method

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

TRACE_METHODS = ("auto", "forward-tangent", "weight-cycle", "jacfwd", "jacrev", "jvp-basis", "loop")


def score_and_quadratic(score_fn: ScoreFn, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """s(x) (n, d) and v'(ds/dx)v (n, k) for ``v`` of shape (n, k, d): k directions per example.

    The model's tangent fast path (forward mode) when it offers one, else reverse mode: J'v by double
    backward, since v'J'v = v'Jv. Measured for the default MLP d -> 128^3 -> d, batch 128, one direction,
    full train step with fused Adam, one thread on this 2-core CPU (min of 15 blocks of 20 steps, ms,
    d = 16 / 64): ``torch.func.jvp`` 3.3 / 6.5, double backward 1.8 / 3.8, tangent fast path 1.7 / 2.9
    eager and 1.2 / 2.2 under torch.compile. Generic forward mode loses eagerly, and under torch.compile
    (2.13) its backward fails ("ZeroTensors are immutable") as a double backward does (aot_autograd has
    none): without the fast path these losses do not compile, and the backend skips such a trial.
    """
    fast = getattr(score_fn, "tangent_jvp", None)
    if fast is not None:
        s, jv = fast(x, v)
        return s, (v * jv).sum(dim=2)
    return _reverse_quadratic(score_fn, x, v)


def _reverse_quadratic(score_fn: ScoreFn, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v'(J' v) = v'(J v) with J' v by reverse mode (double backward), batched over the k directions.

    Under a torch.func transform (e.g. a plugin author's ``torch.func.grad(functional_call(...))``) the
    double backward is refused, so the same product comes from ``torch.func.vjp`` there.
    """
    if _under_functorch():
        s, pullback = torch.func.vjp(score_fn, x)
        jtv = torch.func.vmap(lambda u: pullback(u)[0], in_dims=1, out_dims=1)(v)
        return s, (v * jtv).sum(dim=2)
    x = x.detach().requires_grad_(True)
    s = score_fn(x)
    if v.shape[1] == 1:
        (jtv,) = torch.autograd.grad(s, x, grad_outputs=v[:, 0], create_graph=True)
        return s, (v[:, 0] * jtv).sum(dim=1, keepdim=True)
    directions = v.transpose(0, 1)
    (jtv,) = torch.autograd.grad(s, x, grad_outputs=directions, is_grads_batched=True, create_graph=True)
    return s, (directions * jtv).sum(dim=2).T


def _under_functorch() -> bool:
    return torch._C._functorch.maybe_current_level() is not None


def _is_functorch_refusal(error: RuntimeError) -> bool:
    text = str(error)
    return "functorch" in text or "torch.func" in text or "forward AD" in text or "forward-mode" in text


def score_and_trace(
    score_fn: ScoreFn, x: torch.Tensor, chunk: int = 0, method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """s(x) (n, d) and the exact tr(ds/dx) (n,).

    ``chunk`` > 0 computes the trace over blocks of that many basis vectors, checkpointed when
    gradients are on, so memory is bounded by one block's tangents (a 784-d image model fits);
    0 takes all d at once. ``method``: ``auto`` is the model's fast path when it offers one (the
    cheaper of two by :func:`benchbench.mlp.cheaper_fast_trace` when it offers both), else
    ``jvp-basis`` (``torch.func.jvp`` under ``vmap`` over basis vectors, on the whole batch at once),
    falling back to batched reverse mode for callables ``torch.func`` refuses. ``weight-cycle`` ignores
    ``chunk``: it has no d-sized tangents to block, and keeps about 2 (depth - 1) tensors of n x width^2.

    Full train step of the default MLP, batch 128, eager, one thread, min of 5 blocks (ms, d = 16 / 64):
    forward-tangent 7.6 / 46, jvp-basis 16.5 / 69, jacfwd 17.9 / 58, jacrev 12.1 / 60, loop 14.7 / 64,
    batched reverse 25 / 281. jacrev is about as fast, but only forward-mode blocks can be checkpointed
    (torch.func's reverse transforms refuse checkpoint's hooks), hence jvp-basis as the generic default.
    weight-cycle costs about (depth - 2) width^3 per example instead of forward-tangent's d (depth - 1)
    width^2, so ``auto`` takes it from d = 66 at width 128, depth 3, batch 128 (MNIST's d = 784, say); one
    rough run there (``bench perf``, 5 steps, one repeat, default threads, the shared 2-core CPU at load
    ~3.5): 119 ms / step against forward-tangent's 918.
    """
    if method not in TRACE_METHODS:
        raise ParameterError(f"exact trace: method={method!r} is not valid; expected one of {', '.join(TRACE_METHODS)}")
    if method == "auto":
        method = fast_trace_method(score_fn, x.shape[0]) or method
    if method in FAST_TRACES:
        fast = getattr(score_fn, FAST_TRACES[method], None)
        if fast is None:
            raise ParameterError(
                f"exact trace: method={method!r} needs a model with a {FAST_TRACES[method]} fast path "
                f"(the built-in mlp); {type(score_fn).__name__} has none; use auto, jacfwd, jacrev or jvp-basis"
            )
        return fast(x, chunk) if method == "forward-tangent" else fast(x)
    if method == "loop":
        return _loop_trace(score_fn, x)
    dim = x.shape[-1]
    block = {"auto": _jvp_basis_block, "jvp-basis": _jvp_basis_block, "jacfwd": _jacfwd_block, "jacrev": _jacrev_block}
    try:
        return score_fn(x), _blocked(block[method], score_fn, x, chunk if 0 < chunk < dim else dim)
    except RuntimeError as error:
        if method != "auto" or not _is_functorch_refusal(error):
            raise
    return _reverse_trace(score_fn, x, chunk)


def _blocks(dim: int, chunk: int) -> Iterator[tuple[int, int]]:
    for start in range(0, dim, chunk):
        yield start, min(start + chunk, dim)


def _blocked(block_fn, score_fn: ScoreFn, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Sum a trace over blocks of basis vectors, each block checkpointed while gradients are on.

    Checkpointing (recompute the block in backward) is what bounds training memory to one block.
    ``torch.func``'s reverse transforms (grad, vjp, jacrev) refuse checkpoint's saved-tensor hooks, so
    ``jacrev`` and score functions built on ``torch.func.grad`` (the energy MLP) run unchecked: their
    chunks then bound each block's transient Jacobian, not the graph kept for backward.
    """
    dim = x.shape[-1]
    if chunk >= dim:
        return block_fn(score_fn, x, 0, dim)
    recompute = torch.is_grad_enabled() and block_fn is not _jacrev_block
    trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for start, stop in _blocks(dim, chunk):
        part = None
        if recompute:
            try:
                part = checkpoint(block_fn, score_fn, x, start, stop, use_reentrant=False)
            except RuntimeError as error:
                if "saved tensor hooks" not in str(error):
                    raise
                recompute = False
        trace = trace + (part if part is not None else block_fn(score_fn, x, start, stop))
    return trace


def _basis(x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Basis vectors e_start .. e_{stop-1}, shape (stop - start, d)."""
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)[start:stop]


def _jvp_basis_block(score_fn: ScoreFn, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """sum_{i in block} (J e_i)_i: one jvp of the whole batch per basis vector, vmapped over the block."""
    basis = _basis(x, start, stop)
    columns = vmap(lambda e: jvp(score_fn, (x,), (e.expand_as(x),))[1])(basis)  # (k, n, d)
    return torch.einsum("kbk->b", columns[:, :, start:stop])


def _jacfwd_block(score_fn: ScoreFn, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Per example, jacfwd of s with respect to the block's coordinates only: J[:, block], (d, k)."""
    basis = _basis(x, start, stop)

    def columns(example: torch.Tensor) -> torch.Tensor:
        def restricted(u: torch.Tensor) -> torch.Tensor:
            return score_fn((example + (u - example[start:stop]) @ basis).unsqueeze(0)).squeeze(0)

        return jacfwd(restricted)(example[start:stop])[start:stop]

    return torch.diagonal(vmap(columns)(x), dim1=1, dim2=2).sum(dim=1)


def _jacrev_block(score_fn: ScoreFn, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Per example, jacrev of the block's outputs only: J[block, :], (k, d)."""

    def rows(example: torch.Tensor) -> torch.Tensor:
        return jacrev(lambda y: score_fn(y.unsqueeze(0)).squeeze(0)[start:stop])(example)[:, start:stop]

    return torch.diagonal(vmap(rows)(x), dim1=1, dim2=2).sum(dim=1)


def _loop_trace(score_fn: ScoreFn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The original score-matching code: d reverse-mode calls, one per output coordinate."""
    x = x.detach().requires_grad_(True)
    s = score_fn(x)
    trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(x.shape[-1]):
        (row,) = torch.autograd.grad(s[:, i].sum(), x, create_graph=True)
        trace = trace + row[:, i]
    return s, trace


def _reverse_trace(score_fn: ScoreFn, x: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows e_i' J by batched reverse mode (``is_grads_batched``), for callables torch.func refuses."""
    x = x.detach().requires_grad_(True)
    s = score_fn(x)
    dim = x.shape[-1]
    trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for start, stop in _blocks(dim, chunk if 0 < chunk < dim else dim):
        cotangents = _basis(x, start, stop).unsqueeze(1).expand(-1, x.shape[0], -1)
        (rows,) = torch.autograd.grad(s, x, grad_outputs=cotangents, is_grads_batched=True, create_graph=True)
        trace = trace + torch.einsum("kbk->b", rows[:, :, start:stop])
    return s, trace
