"""FD-SSM in PyTorch: ``fd_sliced_loss(score_fn, x, generator, eps, variant, n_projections) -> scalar tensor``.

Pang et al. (2020) replace the Jacobian-vector product of sliced score matching by a central difference. For a
step v of norm eps,

    v'(ds/dx)v = 1/2 v'(s(x + v) - s(x - v)) + O(eps^4),      s(x) = 1/2 (s(x + v) + s(x - v)) + O(eps^2),

so one forward pass over the batch [x + v; x - v] replaces a forward pass plus a Jacobian-vector product, and
training needs first-order autodiff only. Both approximations are exact when s is affine in x.

Scale: v = eps u with u uniform on the unit sphere, so E[uu'] = I/d. With w = sqrt(d) u (E[ww'] = I, the
direction of the built-in ``sliced:projection=sphere``) the sliced integrand 1/2 (w's)^2 + w'(ds/dx)w is
d/eps^2 [1/2 (v's_bar)^2 + 1/2 v'(s+ - s-)], an estimator of J = E[1/2 ||s||^2 + tr(ds/dx)] like every other
objective here. The reference code (``anneal_ESM_scorenet`` in taufikxu/FD-ScoreMatching) leaves this loss
unscaled, i.e. eps^2/d times J, and squares the projection elementwise before summing; we do neither.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchbench import ParameterError

VARIANTS = ("ssm", "vr")


def directions(x: torch.Tensor, generator: torch.Generator, eps: float, n_projections: int) -> torch.Tensor:
    """Steps v ``(n_projections, n, d)`` uniform on the sphere of radius ``eps``, drawn from ``generator`` only."""
    u = torch.randn((n_projections, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return u * (eps / u.norm(dim=-1, keepdim=True))


def fd_sliced_core(score_fn: Callable, x: torch.Tensor, v: torch.Tensor, eps: float, variant: str) -> torch.Tensor:
    """The loss for given steps ``v`` ``(m, n, d)`` of norm ``eps``: mean over steps and examples.

    ``ssm``: d/eps^2 [1/2 (v's_bar)^2 + 1/2 v'(s+ - s-)];  ``vr``: 1/2 ||s_bar||^2 + d/(2 eps^2) v'(s+ - s-),
    with s+- = s(x +- v) and s_bar their mean, which stands in for s(x) and saves a third forward pass.
    """
    if variant not in VARIANTS:
        raise ParameterError(f"objective 'fd-sliced': variant={variant!r} is not valid; expected one of ssm, vr")
    m, (n, d) = v.shape[0], x.shape
    scores = score_fn(torch.cat([x + v, x - v]).reshape(2 * m * n, d)).reshape(2, m, n, d)
    plus, minus = scores[0], scores[1]
    scale = d / eps**2
    trace = 0.5 * scale * ((plus - minus) * v).sum(dim=-1)
    mean_score = 0.5 * (plus + minus)
    if variant == "vr":
        norm = 0.5 * mean_score.pow(2).sum(dim=-1)
    else:
        norm = 0.5 * scale * (mean_score * v).sum(dim=-1).pow(2)
    return (norm + trace).mean()


def fd_sliced_loss(
    score_fn: Callable,
    x: torch.Tensor,
    generator: torch.Generator,
    eps: float = 0.1,
    variant: str = "ssm",
    n_projections: int = 1,
) -> torch.Tensor:
    """Finite-difference sliced score matching (Pang et al. 2020); see the module docstring for the scale."""
    return fd_sliced_core(score_fn, x, directions(x, generator, eps, n_projections), eps, variant)
