"""The weight-cycle trace of the MLP score network, torch and JAX: tr(ds/dx) = tr(W_1 W_o D_L W_L ... D_2 W_2 D_1).

Each backend's cyclic trace against the brute-force per-example Jacobian (``jacrev``) and against the
forward-tangent path, in float64, for depths 1, 2 and 3 (depth 1 and 2 are special cases of the code, depth 3
the first with a per-example matmul, whose order a wrong product would get wrong); the parameter gradient of
the mean trace, which training differentiates, against the forward-tangent and brute-force ones; the two
backends against each other with the same weights; and ``auto``'s choice between the fast paths by FLOP count.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from benchbench_jax import autodiff as jax_autodiff
from benchbench_jax import losses as jax_losses
from benchbench_jax.models import Architecture, MLPScore, init_params, score_function
from benchbench_torch import autodiff as torch_autodiff
from benchbench_torch import losses as torch_losses
from benchbench_torch.models import ScoreMLP
from test_parity import assert_same, batch, pair

from benchbench.errors import ParameterError
from benchbench.mlp import cheaper_fast_trace

F64 = torch.float64
DIM, WIDTH, N = 5, 7, 6  # width != dim, so that a product in the wrong order fails on shape or on value
TOL = {"rtol": 1e-10, "atol": 1e-12}
DEPTHS = [1, 2, 3]
ACTIVATIONS = ["softplus", "tanh", "swish"]


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def rows(n: int = N, dim: int = DIM, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim))


# -- torch ----------------------------------------------------------------------------------------
def torch_mlp(depth: int, activation: str, dim: int = DIM) -> ScoreMLP:
    torch.manual_seed(depth)
    return ScoreMLP(dim, WIDTH, depth, activation).to(F64)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_torch_cyclic_trace_is_the_jacobian_trace(depth, activation):
    net = torch_mlp(depth, activation)
    x = torch.tensor(rows())
    jacobians = torch.func.vmap(torch.func.jacrev(lambda y: net(y.unsqueeze(0)).squeeze(0)))(x)
    scores, trace = net.cyclic_trace(x)
    _, tangent = net.tangent_trace(x)
    torch.testing.assert_close(scores, net(x), **TOL)
    torch.testing.assert_close(trace, torch.diagonal(jacobians, dim1=1, dim2=2).sum(1), **TOL)
    torch.testing.assert_close(trace, tangent, **TOL)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_torch_cyclic_trace_gradient_is_the_forward_tangent_and_brute_force_one(depth, activation):
    net = torch_mlp(depth, activation)
    x = torch.tensor(rows())
    params = list(net.parameters())[:-1]  # not the output bias: it does not move the trace
    brute_force = torch.func.vmap(torch.func.jacrev(lambda y: net(y.unsqueeze(0)).squeeze(0)))(x)
    cyclic = torch.autograd.grad(net.cyclic_trace(x)[1].mean(), params)
    assert max(g.abs().max() for g in cyclic) > 1e-3
    for reference in (net.tangent_trace(x)[1], torch.diagonal(brute_force, dim1=1, dim2=2).sum(1)):
        for i, (got, want) in enumerate(zip(cyclic, torch.autograd.grad(reference.mean(), params))):
            torch.testing.assert_close(got, want, **TOL, msg=f"gradient of parameter {i}")


def test_torch_score_and_trace_offers_weight_cycle_and_ignores_chunk():
    net = torch_mlp(3, "softplus")
    x = torch.tensor(rows())
    expected = net.tangent_trace(x)[1]
    for chunk in (0, 2):
        torch.testing.assert_close(torch_autodiff.score_and_trace(net, x, chunk, "weight-cycle")[1], expected, **TOL)
    with pytest.raises(ParameterError, match="'weight-cycle' needs a model with a cyclic_trace fast path"):
        torch_losses.exact_loss(lambda y: -y, x, None, method="weight-cycle")


# -- JAX ------------------------------------------------------------------------------------------
def jax_mlp(depth: int, activation: str, noise_conditional: bool = False) -> tuple[Architecture, dict]:
    arch = Architecture(DIM, WIDTH, depth, activation, noise_conditional=noise_conditional)
    return arch, jax.jit(init_params, static_argnums=(0, 2))(arch, jax.random.key(depth), jnp.float64)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_jax_cyclic_trace_value_and_gradient(depth, activation):
    """One jitted program per case: eager JAX would compile every operation on its own."""
    arch, params = jax_mlp(depth, activation)
    x = jnp.asarray(rows())

    def mean_trace(p, path):
        return getattr(score_function(arch, p), path)(x)[1].mean()

    def brute_force(p):
        fn = score_function(arch, p)
        return jnp.trace(jax.vmap(jax.jacrev(lambda row: fn(row[None])[0]))(x), axis1=1, axis2=2)

    def everything(p):
        fn = score_function(arch, p)
        grads = [jax.grad(mean_trace)(p, path) for path in ("cyclic_trace", "tangent_trace")]
        grads.append(jax.grad(lambda q: brute_force(q).mean())(p))
        return fn.cyclic_trace(x), fn.tangent_trace(x)[1], brute_force(p), fn(x), grads

    (scores, trace), tangent, reference, direct, (cyclic_grads, *references) = jax.jit(everything)(params)
    np.testing.assert_allclose(scores, direct, **TOL)
    np.testing.assert_allclose(trace, reference, **TOL)
    np.testing.assert_allclose(trace, tangent, **TOL)
    leaves = jax.tree.leaves(cyclic_grads)
    assert max(float(jnp.abs(leaf).max()) for leaf in leaves) > 1e-3
    for reference_grads in references:
        for i, (got, want) in enumerate(zip(leaves, jax.tree.leaves(reference_grads))):
            np.testing.assert_allclose(got, want, **TOL, err_msg=f"gradient leaf {i}")


@pytest.mark.parametrize("depth", DEPTHS)
def test_jax_noise_conditional_cyclic_trace_at_one_sigma(depth):
    """The first layer also sees c_noise: only its first d columns enter W_1 W_o."""
    arch, params = jax_mlp(depth, "tanh", noise_conditional=True)
    x, sigma = jnp.asarray(rows()), jnp.linspace(0.1, 2.0, N)
    fn = MLPScore(arch, params, sigma)
    per_example = jax.vmap(lambda row, s: jnp.trace(jax.jacrev(lambda r: fn(r[None], s[None])[0])(row)))
    (scores, trace), tangent, expected = jax.jit(
        lambda x: (fn.cyclic_trace(x), fn.tangent_trace(x, 2)[1], per_example(x, sigma))
    )(x)
    np.testing.assert_allclose(trace, expected, **TOL)
    np.testing.assert_allclose(trace, tangent, **TOL)
    np.testing.assert_allclose(scores, jax.jit(fn)(x), **TOL)


def test_jax_score_and_trace_offers_weight_cycle_and_ignores_chunk():
    arch, params = jax_mlp(3, "softplus")
    fn, x = score_function(arch, params), jnp.asarray(rows())
    traces = jax.jit(lambda x: [jax_autodiff.score_and_trace(fn, x, chunk, "weight-cycle")[1] for chunk in (0, 2)])
    for trace in traces(x):
        np.testing.assert_allclose(trace, jax.jit(lambda x: fn.tangent_trace(x)[1])(x), **TOL)
    with pytest.raises(ParameterError, match="'weight-cycle' needs a model that offers it"):
        jax_autodiff.score_and_trace(lambda y: -y, x, 0, "weight-cycle")


# -- both -----------------------------------------------------------------------------------------
def test_torch_and_jax_weight_cycle_losses_agree_with_the_same_weights():
    net, arch, params = pair()
    x = batch()
    assert_same(
        net,
        lambda: torch_losses.exact_loss(net, torch.tensor(x), torch.Generator(), 0, "weight-cycle"),
        lambda p: jax_losses.exact_loss(score_function(arch, p), jnp.asarray(x), jax.random.key(0), 0, "weight-cycle"),
        params,
    )


def test_the_cost_model_takes_forward_tangent_at_low_and_weight_cycle_at_high_dimension():
    assert cheaper_fast_trace(16, 128, 3, 128) == "forward-tangent"
    assert cheaper_fast_trace(784, 128, 3, 128) == "weight-cycle"


def test_auto_takes_the_path_the_cost_model_names(monkeypatch):
    """At width 7, depth 3, batch 6 the cost model switches between d = 3 and d = 40: both backends follow it."""
    taken = []

    def spy(cls: type, name: str) -> None:
        original = getattr(cls, name)

        def recorded(self, *args):
            taken.append(name)
            return original(self, *args)

        monkeypatch.setattr(cls, name, recorded)

    for cls in (ScoreMLP, MLPScore):
        for name in torch_autodiff.FAST_TRACES.values():
            spy(cls, name)
    for dim, method in ((3, "forward-tangent"), (40, "weight-cycle")):
        assert cheaper_fast_trace(dim, WIDTH, 3, N) == method
        taken.clear()
        torch_autodiff.score_and_trace(torch_mlp(3, "softplus", dim), torch.tensor(rows(dim=dim)))
        arch = Architecture(dim, WIDTH, 3, "softplus")
        fn = score_function(arch, init_params(arch, jax.random.key(0), jnp.float64))
        jax.jit(functools.partial(jax_autodiff.score_and_trace, fn))(jnp.asarray(rows(dim=dim)))
        assert taken == [torch_autodiff.FAST_TRACES[method]] * 2, dim
