"""Score networks for the torch backend, and the forward-tangent fast path of the MLP.

Three networks, chosen by ``--model`` and by whether the objective is noise-conditional:

- :class:`ScoreMLP`: s(x) = MLP(x), d -> width^depth -> d. It offers the fast paths that
  :mod:`benchbench_torch.autodiff` looks for (``tangent_jvp``, ``tangent_trace``, ``cyclic_trace``).
- :class:`EnergyMLP`: an energy E(x) = MLP(x), d -> width^depth -> 1, with s = -grad_x E, so the
  score is a conservative field by construction and tr(ds/dx) = -Laplacian E.
- :class:`NoiseConditionalMLP`: s(x, sigma) preconditioned as benchbench.noise.Preconditioning says (EDM-style),
  either kind of f, one sigma per example.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from benchbench.noise import Preconditioning

Activation = tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]

# (a(z), a'(z, a(z))): the derivative is written out for tangent propagation; autograd differentiates
# it once more when a loss containing a trace is trained, so it must be an ordinary differentiable expression.
ACTIVATIONS: dict[str, Activation] = {
    "softplus": (F.softplus, lambda z, h: torch.sigmoid(z)),
    "tanh": (torch.tanh, lambda z, h: 1 - h * h),
    "elu": (F.elu, lambda z, h: torch.where(z > 0, torch.ones_like(z), h + 1)),
    "swish": (F.silu, lambda z, h: torch.sigmoid(z) * (1 + z * (1 - torch.sigmoid(z)))),
    "relu": (F.relu, lambda z, h: (z > 0).to(z.dtype)),
}


class MLP(nn.Module):
    """in_dim -> width x depth -> out_dim with a smooth activation; PyTorch's default initialisation."""

    def __init__(self, in_dim: int, out_dim: int, width: int, depth: int, activation: str) -> None:
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(in_dim if i == 0 else width, width) for i in range(depth))
        self.out = nn.Linear(width, out_dim)
        self.activation = activation

    def preactivations(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The last hidden layer's output and every hidden pre-activation z_l (what tangents need)."""
        act = ACTIVATIONS[self.activation][0]
        h, zs = x, []
        for layer in self.hidden:
            zs.append(layer(h))
            h = act(zs[-1])
        return h, zs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.preactivations(x)[0])


class ScoreMLP(MLP):
    """s(x) = MLP(x), with forward tangent propagation as a fast path for Jacobian products.

    Tangent propagation carries T = dh/dx · V through the layers, T <- (T W') * a'(z), one batched
    matmul per layer for all directions at once instead of one network pass per direction (DESIGN.md
    measured it faster than ``vmap(jacfwd)`` in torch and than JAX's ``jacfwd``). Its trace costs
    about d (depth - 1) width^2 per example; :meth:`cyclic_trace` costs about (depth - 2) width^3,
    which is less at high d (see :func:`benchbench.mlp.cheaper_fast_trace`).
    """

    def __init__(self, dim: int, width: int, depth: int, activation: str) -> None:
        super().__init__(dim, dim, width, depth, activation)

    @property
    def mlp_shape(self) -> tuple[int, int, int]:
        """(dim, width, depth): what :func:`benchbench.mlp.cheaper_fast_trace` needs to choose."""
        return self.out.out_features, self.out.in_features, len(self.hidden)

    def _tangent(self, zs: list[torch.Tensor], first: torch.Tensor) -> torch.Tensor:
        """Propagate tangents of the first hidden layer's pre-activation, ``first`` (n, k, width)."""
        act, dact = ACTIVATIONS[self.activation]
        t = first
        for i, z in enumerate(zs):
            if i:
                t = t @ self.hidden[i].weight.T
            t = t * dact(z, act(z)).unsqueeze(1)
        return t

    def tangent_jvp(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s(x) (n, d) and J v for k directions per example: ``v`` (n, k, d) -> (n, k, d)."""
        h, zs = self.preactivations(x)
        t = self._tangent(zs, v @ self.hidden[0].weight.T)
        return self.out(h), t @ self.out.weight.T

    def tangent_trace(self, x: torch.Tensor, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """s(x) (n, d) and tr(ds/dx) (n,), propagating the d basis vectors ``chunk`` at a time.

        The basis tangent of the first layer is W_1' itself (no matmul), and of the last layer only the
        diagonal is needed, sum_h T[b, i, h] W_L[i, h], which saves a factor d there. With ``chunk`` > 0
        and gradients on, each block is checkpointed: the graph then keeps only the activations, not
        every block's (n, chunk, width) tangents, so memory is bounded by one block.
        """
        h, zs = self.preactivations(x)
        dim = x.shape[-1]
        if chunk <= 0 or chunk >= dim:
            return self.out(h), self._trace_block(zs, 0, dim)
        recompute = torch.is_grad_enabled()
        trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for start in range(0, dim, chunk):
            stop = min(start + chunk, dim)
            if recompute:
                trace = trace + checkpoint(self._trace_block, zs, start, stop, use_reentrant=False)
            else:
                trace = trace + self._trace_block(zs, start, stop)
        return self.out(h), trace

    def _trace_block(self, zs: list[torch.Tensor], start: int, stop: int) -> torch.Tensor:
        t = self._tangent(zs, self.hidden[0].weight.T[start:stop].unsqueeze(0))
        return torch.einsum("bih,ih->b", t, self.out.weight[start:stop])

    def cyclic_trace(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s(x) (n, d) and tr(ds/dx) (n,) by the cyclic property of the trace, with no d-sized tangents.

        With D_l = diag(a'(z_l)), J = W_o D_L W_L ... D_2 W_2 D_1 W_1, so tr(J) = tr(M C) with
        M = W_1 W_o (width x width, once per batch: the only product that costs d) and
        C = D_L W_L ... D_2 W_2 D_1 per example. C is built from the right: D_2 W_2 D_1 is a scaling
        (width^2), each further layer one width x width matmul (width^3), and tr(M C) an elementwise
        sum; depth 1 needs only the diagonal of M (d width), tr(D_1 M) = sum_a a'(z_1)_a M_aa. Memory is
        not chunked: autograd keeps about two (n, width, width) tensors per hidden layer after the first,
        whatever d is.
        """
        h, zs = self.preactivations(x)
        act, dact = ACTIVATIONS[self.activation]
        slopes = [dact(z, act(z)) for z in zs]
        if len(slopes) == 1:
            return self.out(h), slopes[0] @ torch.einsum("ai,ia->a", self.hidden[0].weight, self.out.weight)
        cycle = self.hidden[0].weight @ self.out.weight
        chain = slopes[1].unsqueeze(2) * self.hidden[1].weight * slopes[0].unsqueeze(1)
        for layer, slope in zip(self.hidden[2:], slopes[2:]):
            chain = slope.unsqueeze(2) * (layer.weight @ chain)
        return self.out(h), torch.einsum("ac,nca->n", cycle, chain)


class EnergyMLP(nn.Module):
    """s(x) = -grad_x E(x) with E = MLP(x) scalar.

    The gradient is taken with ``torch.func.grad`` (not ``torch.autograd.grad``) so that the score
    composes with jvp/jacfwd/vmap: the trace is then forward-over-reverse, tr(ds/dx) = -Laplacian E.
    """

    def __init__(self, dim: int, width: int, depth: int, activation: str) -> None:
        super().__init__()
        self.energy = MLP(dim, 1, width, depth, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.func.grad(lambda y: self.energy(y).sum())(x)


class NoiseConditionalMLP(nn.Module):
    """s(x, sigma) = skip(sigma) x + out(sigma) F(c_in(sigma) x, c_noise(sigma)), sigma of shape (n,).

    The coefficients are :class:`benchbench.noise.Preconditioning`'s (``score`` by default, ``edm``, or NCSN's
    F([x, ln sigma]) / sigma), F a score or an energy network. An energy F = -grad_u E(u, c_noise) keeps the score
    conservative: the skip term is the gradient of -||x||^2 / (2 (sigma^2 + sd^2)) and out(sigma) F(c_in x) with
    out = k c_in is -grad_x of k E(c_in x).
    """

    def __init__(
        self, dim: int, width: int, depth: int, activation: str, energy: bool, preconditioning: Preconditioning
    ) -> None:
        super().__init__()
        self.is_energy = energy
        self.preconditioning = preconditioning
        self.f = MLP(dim + 1, 1 if energy else dim, width, depth, activation)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.to(x.dtype).unsqueeze(-1)
        skip, out, c_in, c_noise = self.preconditioning.coefficients(sigma, torch)
        if self.is_energy:
            f = -torch.func.grad(lambda u: self.f(torch.cat([u, c_noise], dim=-1)).sum())(c_in * x)
        else:
            f = self.f(torch.cat([c_in * x, c_noise], dim=-1))
        return skip * x + out * f


def build_model(
    settings,
    dim: int,
    noise_conditional: bool = False,
    preconditioning: Preconditioning | None = None,
    shape: tuple[int, ...] | None = None,
) -> nn.Module:
    """The network the trial's settings ask for (``settings.model``: mlp, energy-mlp or conv); a noise-conditional
    MLP with ``preconditioning`` (:func:`benchbench.noise.objective_preconditioning`; the default if None).

    ``conv`` (:mod:`benchbench_torch.convnet`) needs the per-example image ``shape`` (``Data.shape``); it has its
    own noise conditioning and ignores ``preconditioning``.
    """
    if settings.model == "conv":
        from benchbench_torch import convnet

        return convnet.build(settings, shape if shape is not None else (dim,), noise_conditional)
    energy = settings.model == "energy-mlp"
    if noise_conditional:
        conditioning = preconditioning or Preconditioning()
        return NoiseConditionalMLP(dim, settings.width, settings.depth, settings.activation, energy, conditioning)
    network = EnergyMLP if energy else ScoreMLP
    return network(dim, settings.width, settings.depth, settings.activation)
