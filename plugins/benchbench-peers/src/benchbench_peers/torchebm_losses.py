"""torchebm 0.8.9's score-matching losses, called as they ship, behind benchbench's loss signature.

Adaptation (what the network outputs): torchebm trains an energy E(x) and its losses take the score through
``compute_score``, which returns grad E = -s (its docstring: "the score function, grad_x E(x)"). benchbench hands
the loss a score network s, so ``compute_score`` is replaced on the loss instance by x -> -s(x): every line of
torchebm's loss arithmetic then runs unchanged on benchbench's model. ``SlicedScoreMatching`` differentiates
``model(x)`` itself (twice); it is given :class:`ScoreAsEnergy`, an autograd function whose value is 0 and whose
gradient is -s(x), built from differentiable operations so that torchebm's second ``torch.autograd.grad``
sees ds/dx. Randomness: torchebm takes a ``generator`` argument, so benchbench's is passed straight in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchebm.losses import DenoisingScoreMatching, ScoreMatching, SlicedScoreMatching


class _Holder(torch.nn.Module):
    """torchebm stores a model; the adapted losses never call it."""


def _with_score(loss: torch.nn.Module, score_fn: Callable) -> torch.nn.Module:
    loss.compute_score = lambda x, noise=None, model_kwargs=None: -score_fn(x if noise is None else x + noise)
    return loss


def esm_approx_loss(score_fn: Callable, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``ScoreMatching(hessian_method="approx")``: 1/2||s||^2 + a finite-difference trace (step 1e-5)."""
    loss = ScoreMatching(_Holder(), hessian_method="approx", dtype=x.dtype, device=x.device)
    return _with_score(loss, score_fn)(x, generator=generator)


def dsm_loss(score_fn: Callable, x: torch.Tensor, generator: torch.Generator, sigma: float = 0.01) -> torch.Tensor:
    """``DenoisingScoreMatching(noise_scale=sigma)``: 1/2 ||grad E(x + noise) - noise / sigma^2||^2."""
    loss = DenoisingScoreMatching(_Holder(), noise_scale=sigma, dtype=x.dtype, device=x.device)
    return _with_score(loss, score_fn)(x, generator=generator)


class ScoreAsEnergy(torch.nn.Module):
    """An "energy" for torchebm's sliced loss: value 0, gradient -s(x) (differentiable, so J's products work)."""

    def __init__(self, score_fn: Callable) -> None:
        super().__init__()
        self.score_fn = score_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score_fn = self.score_fn

        class Energy(torch.autograd.Function):
            @staticmethod
            def forward(ctx, y):
                ctx.save_for_backward(y)
                return y.new_zeros(y.shape[0])

            @staticmethod
            def backward(ctx, grad):
                (y,) = ctx.saved_tensors
                return -grad[:, None] * score_fn(y)

        return Energy.apply(x)


def sliced_loss(
    score_fn: Callable,
    x: torch.Tensor,
    generator: torch.Generator,
    n_projections: int = 5,
    projection: str = "rademacher",
) -> torch.Tensor:
    """``SlicedScoreMatching(n_projections, projection_type)``: 1/2 (v's)^2 + v'(ds/dx)v, torchebm's defaults."""
    loss = SlicedScoreMatching(
        ScoreAsEnergy(score_fn), n_projections=n_projections, projection_type=projection, dtype=x.dtype, device=x.device
    )
    return loss(x, generator=generator)
