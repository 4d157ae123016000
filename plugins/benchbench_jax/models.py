"""Score networks for the JAX backend as plain pytrees: a frozen architecture plus a dict of arrays.

Plain pytrees rather than flax or equinox: the networks are MLPs, so a framework would add a dependency and
its module system for about forty lines of code, and ``jit``/``grad``/``vmap``/``optax`` apply to a dict of
arrays with no special case anywhere in the core. The layout mirrors the torch backend's ``nn.Linear`` stack
(weights ``(out, in)``, ``y = x W' + b``, the same default initialisation), so identical weights can be copied
across and the two backends compared number for number (``tests/test_parity.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp

from benchbench.noise import Preconditioning
from benchbench_jax.autodiff import basis_blocks, sum_over_blocks

Params = dict[str, list[dict[str, jax.Array]]]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "swish": jax.nn.silu,
    "relu": jax.nn.relu,
}


@dataclass(frozen=True)
class Architecture:
    """What the network is, without its weights; hashable, so it can be closed over by jitted functions.

    ``energy``: the MLP outputs a scalar E(x) and the score is -grad_x E. ``noise_conditional``: the MLP F on
    ``[c_in x, c_noise]`` and s = skip x + out F, the coefficients of ``preconditioning`` (``score`` by default,
    ``edm``, or NCSN's F([x, ln sigma]) / sigma; see :class:`benchbench.noise.Preconditioning`, shared with the
    torch backend).
    """

    dim: int
    width: int
    depth: int
    activation: str
    energy: bool = False
    noise_conditional: bool = False
    preconditioning: Preconditioning | None = None  # None: the default, Preconditioning()

    compiled_loops: ClassVar[bool] = True
    """Loops of steps over this network compile into one program (``fori_loop``, ``scan``): a dispatch per step
    would cost more than a small MLP step (see :class:`benchbench_jax.convnet.ConvArchitecture` for the
    exception)."""

    @property
    def sizes(self) -> list[int]:
        fan_in = self.dim + (1 if self.noise_conditional else 0)
        return [fan_in] + [self.width] * self.depth + [1 if self.energy else self.dim]


def init_params(arch: Architecture, key: jax.Array, dtype) -> Params:
    """torch's ``nn.Linear`` default: W and b uniform on +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt 5).

    One uniform draw cut into every tensor, not one draw per tensor: each random call site compiles its own
    threefry kernel (measured ~0.25 s of CPU apiece here), which made initialisation cost more than training
    a short trial.
    """
    if not isinstance(arch, Architecture):  # --model conv: benchbench_jax.convnet.ConvArchitecture
        from benchbench_jax import convnet

        return convnet.init_params(arch, key, dtype)
    sizes = arch.sizes
    shapes = [shape for fan_in, fan_out in zip(sizes[:-1], sizes[1:]) for shape in ((fan_out, fan_in), (fan_out,))]
    total = sum(math.prod(shape) for shape in shapes)
    draws = jax.random.uniform(key, (total,), dtype, -1.0, 1.0)
    tensors, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        tensors.append(draws[start : start + size].reshape(shape) / sizes[len(tensors) // 2] ** 0.5)
        start += size
    return {"layers": [{"w": w, "b": b} for w, b in zip(tensors[::2], tensors[1::2])]}


def _coefficients(arch: Architecture, sigma: jax.Array | None, dtype):
    """(skip, out, c_in, c_noise), each (n, 1), of a noise-conditional network."""
    if sigma is None:
        raise ValueError("a noise-conditional network needs sigma, one per example")
    return (arch.preconditioning or Preconditioning()).coefficients(sigma[:, None].astype(dtype), jnp)


def network(arch: Architecture, params: Params, u: jax.Array, c_noise: jax.Array | None = None) -> jax.Array:
    """The raw MLP F(u) or F([u, c_noise]): ``(n, d)`` for a score network, ``(n, 1)`` for an energy network."""
    act = ACTIVATIONS[arch.activation]
    h = u if c_noise is None else jnp.concatenate([u, c_noise], axis=1)
    *hidden, last = params["layers"]
    for layer in hidden:
        h = act(h @ layer["w"].T + layer["b"])
    return h @ last["w"].T + last["b"]


def score(arch: Architecture, params: Params, x: jax.Array, sigma: jax.Array | None = None) -> jax.Array:
    """s(x) ``(n, d)``; ``sigma`` ``(n,)`` is ignored by a network that is not noise-conditional."""
    if not isinstance(arch, Architecture):  # --model conv
        from benchbench_jax import convnet

        return convnet.score(arch, params, x, sigma if arch.noise_conditional else None)
    if not arch.noise_conditional:
        c_in, c_noise = 1.0, None
    else:
        skip, out, c_in, c_noise = _coefficients(arch, sigma, x.dtype)
    if arch.energy:
        energy = lambda points: network(arch, params, points, c_noise).sum()  # noqa: E731 - rows are independent
        f = -jax.grad(energy)(c_in * x)
    else:
        f = network(arch, params, c_in * x, c_noise)
    return skip * x + out * f if arch.noise_conditional else f


def _fast_trace(
    arch: Architecture,
    params: Params,
    x: jax.Array,
    sigma: jax.Array | None,
    network_trace: Callable[[list[jax.Array]], jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """Scores and tr(ds/dx) of a score MLP, given ``network_trace(slopes)``: tr(dF/du) of the raw MLP from
    act'(z) of every hidden layer, ``(n, width)`` each, which one forward pass keeps for either fast path."""
    act = ACTIVATIONS[arch.activation]
    *hidden, last = params["layers"]
    if arch.noise_conditional:
        skip, out, c_in, c_noise = _coefficients(arch, sigma, x.dtype)
        h = jnp.concatenate([c_in * x, c_noise], axis=1)
    else:
        h = x
    slopes = []
    for layer in hidden:
        h, slope = jax.jvp(act, (h @ layer["w"].T + layer["b"],), (jnp.ones((x.shape[0], arch.width), x.dtype),))
        slopes.append(slope)
    scores = h @ last["w"].T + last["b"]
    trace = network_trace(slopes)
    if arch.noise_conditional:  # d(skip x + out F(c_in x))/dx = skip I + out c_in dF/du
        return skip * x + out * scores, arch.dim * skip[:, 0] + (out * c_in)[:, 0] * trace
    return scores, trace


def tangent_trace(
    arch: Architecture, params: Params, x: jax.Array, sigma: jax.Array | None, chunk: int
) -> tuple[jax.Array, jax.Array]:
    """Scores and tr(ds/dx) of a score MLP by forward tangent propagation (DESIGN.md's fast path).

    One forward pass keeps act'(z) of every hidden layer; then the input Jacobian T (n x k x width for a
    block of k basis vectors) is carried as T <- (T W') * act'(z), and at the last layer only its diagonal
    is formed, sum_h T[n, i, h] W[i, h], which saves a factor d there. ``chunk`` bounds k as in
    :func:`benchbench_jax.autodiff.score_and_trace`.
    """
    *hidden, last = params["layers"]
    w_in = hidden[0]["w"][:, : arch.dim]

    def network_trace(slopes: list[jax.Array]) -> jax.Array:
        def block_trace(block: jax.Array) -> jax.Array:
            tangent = (block @ w_in.T)[None] * slopes[0][:, None, :]
            for layer, slope in zip(hidden[1:], slopes[1:]):
                tangent = (tangent @ layer["w"].T) * slope[:, None, :]
            return jnp.einsum("nkh,kh->n", tangent, block @ last["w"])

        return sum_over_blocks(block_trace, basis_blocks(arch.dim, chunk, x.dtype))

    return _fast_trace(arch, params, x, sigma, network_trace)


def cyclic_trace(
    arch: Architecture, params: Params, x: jax.Array, sigma: jax.Array | None
) -> tuple[jax.Array, jax.Array]:
    """Scores and tr(ds/dx) of a score MLP by the cyclic property of the trace, with no d-sized tangents.

    With D_l = diag(act'(z_l)), dF/du = W_o D_L W_L ... D_2 W_2 D_1 W_1, so its trace is tr(M C) with
    M = W_1 W_o (width x width, once per batch: the only product that costs d) and C = D_L W_L ... D_2 W_2 D_1
    per example, built from the right: D_2 W_2 D_1 is a scaling (width^2), each further layer one
    width x width matmul (width^3). Depth 1 needs only the diagonal of M, tr(D_1 M) = sum_a act'(z_1)_a M_aa.
    Not chunked: the backward pass keeps about two (n, width, width) arrays per hidden layer after the first,
    whatever d is (the same algorithm as the torch ScoreMLP's ``cyclic_trace``).
    """
    *hidden, last = params["layers"]
    w_in = hidden[0]["w"][:, : arch.dim]

    def network_trace(slopes: list[jax.Array]) -> jax.Array:
        if len(slopes) == 1:
            return slopes[0] @ jnp.einsum("ai,ia->a", w_in, last["w"])
        cycle = w_in @ last["w"]
        chain = slopes[1][:, :, None] * hidden[1]["w"] * slopes[0][:, None, :]
        for layer, slope in zip(hidden[2:], slopes[2:]):
            chain = slope[:, :, None] * (layer["w"] @ chain)
        return jnp.einsum("ac,nca->n", cycle, chain)

    return _fast_trace(arch, params, x, sigma, network_trace)


class MLPScore:
    """A score MLP bound to its parameters: ``s(x)`` or ``s(x, sigma)``, plus the two fast trace paths.

    Losses take any callable; :func:`benchbench_jax.autodiff.score_and_trace` looks for the
    ``tangent_trace(x, chunk)`` and ``cyclic_trace(x)`` attributes to use the fast paths, and for ``mlp_shape``
    to choose between them (the torch ScoreMLP offers the same names).
    ``sigma`` fixes the noise level of a noise-conditional network for one-argument use (traces at one sigma).
    """

    def __init__(self, arch: Architecture, params: Params, sigma: jax.Array | None = None) -> None:
        self.arch, self.params, self.sigma = arch, params, sigma

    def __call__(self, x: jax.Array, sigma: jax.Array | None = None) -> jax.Array:
        return score(self.arch, self.params, x, self.sigma if sigma is None else sigma)

    @property
    def mlp_shape(self) -> tuple[int, int, int]:
        """(dim, width, depth): what :func:`benchbench.mlp.cheaper_fast_trace` needs to choose."""
        return self.arch.dim, self.arch.width, self.arch.depth

    def tangent_trace(self, x: jax.Array, chunk: int = 0) -> tuple[jax.Array, jax.Array]:
        return tangent_trace(self.arch, self.params, x, self.sigma, chunk)

    def cyclic_trace(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return cyclic_trace(self.arch, self.params, x, self.sigma)


def score_function(arch: Architecture, params: Params, sigma: jax.Array | None = None) -> Callable[..., jax.Array]:
    """The callable a loss receives. Energy and conv networks have no fast trace path (generic autodiff)."""
    if not isinstance(arch, Architecture) or arch.energy:
        return lambda x, noise=None: score(arch, params, x, sigma if noise is None else noise)
    return MLPScore(arch, params, sigma)
