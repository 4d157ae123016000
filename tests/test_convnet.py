"""The convolutional score network (``--model conv``): torch and JAX agree number for number (float64), the exact
trace goes through generic autodiff and matches a brute-force Jacobian, and flat data is a skip, not a crash."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from benchbench_jax import convnet as jax_convnet
from benchbench_jax import losses as jax_losses
from benchbench_jax.autodiff import score_and_trace as jax_score_and_trace
from benchbench_jax.models import init_params, score, score_function
from benchbench_torch import losses as torch_losses
from benchbench_torch.autodiff import score_and_trace as torch_score_and_trace
from benchbench_torch.convnet import ConvScore
from benchbench_torch.models import build_model
from test_parity import assert_same

from benchbench.errors import SkipTrial
from benchbench.trial import Settings

SETTINGS = Settings(model="conv", width=32)  # 4 base channels: small enough for exact traces in a test
N = 4


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def pair(shape=(6, 6, 1), noise_conditional=False):
    torch.manual_seed(0)
    net = build_model(SETTINGS, int(np.prod(shape)), noise_conditional, shape=shape).double()
    assert isinstance(net, ConvScore)
    tensors = [p.detach().numpy() for p in net.parameters()]
    params = {"layers": [{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in zip(tensors[::2], tensors[1::2])]}
    arch = jax_convnet.architecture(SETTINGS, shape, noise_conditional)
    return net, arch, params


def images(shape, seed=0):
    return np.random.default_rng(seed).random((N, int(np.prod(shape))))


@pytest.mark.parametrize("shape", [(6, 6, 1), (7, 5, 2)])  # an odd size: the upsampling crops back
@pytest.mark.parametrize("noise_conditional", [False, True])
def test_same_scores(shape, noise_conditional):
    net, arch, params = pair(shape, noise_conditional)
    x, sigma = images(shape), np.linspace(0.1, 1.0, N)
    with torch.no_grad():
        expected = (net(torch.tensor(x), torch.tensor(sigma)) if noise_conditional else net(torch.tensor(x))).numpy()
    got = score(arch, params, jnp.asarray(x), jnp.asarray(sigma) if noise_conditional else None)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-13)


def test_jax_initialisation_has_torch_shapes_and_scale():
    net, arch, _ = pair((6, 6, 1))
    params = init_params(arch, jax.random.key(0), jnp.float64)
    torch_shapes = [tuple(p.shape) for p in net.parameters()]
    jax_shapes = [tuple(t.shape) for layer in params["layers"] for t in (layer["w"], layer["b"])]
    assert jax_shapes == torch_shapes
    for (i, _, _), layer in zip(arch.layers, params["layers"]):
        assert float(jnp.abs(layer["w"]).max()) <= 1 / np.sqrt(9 * i)


def test_exact_loss_and_gradients_agree_through_generic_autodiff():
    net, arch, params = pair((4, 4, 1))
    x, chunk = images((4, 4, 1)), 7  # blocks of basis vectors, the last one short
    fn = score_function(arch, params)
    assert getattr(fn, "tangent_trace", None) is None  # the fast path is the MLP's only
    assert_same(
        net,
        lambda: torch_losses.exact_loss(net, torch.tensor(x), torch.Generator(), chunk, "auto"),
        jax.jit(lambda p: jax_losses.exact_loss(score_function(arch, p), jnp.asarray(x), jax.random.key(0), chunk)),
        params,
    )


def test_multiscale_denoising_agrees_with_replayed_noise():
    shape = (6, 6, 1)
    net, arch, params = pair(shape, noise_conditional=True)
    x, ladder = images(shape), jax_losses.sigma_ladder(0.05, 1.0, 4)
    replay = torch.Generator().manual_seed(7)
    levels = torch.randint(0, 4, (N,), generator=replay).numpy()
    z = torch.randn(x.shape, generator=replay, dtype=torch.float64).numpy()
    assert_same(
        net,
        lambda: torch_losses.multiscale_denoising_loss(
            net, torch.tensor(x), torch.Generator().manual_seed(7), 0.05, 1.0, 4
        ),
        lambda p: jax_losses.multiscale_denoising_core(
            score_function(arch, p), jnp.asarray(x), jnp.asarray(z), jnp.asarray(ladder[levels])
        ),
        params,
    )


def test_trace_is_the_jacobian_trace_in_both_backends():
    shape = (6, 6, 1)
    net, arch, params = pair(shape)
    x = images(shape)
    jacobians = torch.func.vmap(torch.func.jacrev(lambda row: net(row[None])[0]))(torch.tensor(x))
    brute = torch.diagonal(jacobians, dim1=1, dim2=2).sum(dim=1).detach().numpy()
    with torch.no_grad():
        _, torch_trace = torch_score_and_trace(net, torch.tensor(x), chunk=5)
    _, jax_trace = jax_score_and_trace(score_function(arch, params), jnp.asarray(x), chunk=5)
    np.testing.assert_allclose(torch_trace.numpy(), brute, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(jax_trace), brute, rtol=1e-10)


@pytest.mark.parametrize("shape", [(4,), (3, 2, 1, 1)])
def test_data_without_an_image_shape_is_a_skip(shape):
    with pytest.raises(SkipTrial, match="--model conv needs images"):
        build_model(SETTINGS, int(np.prod(shape)), shape=shape)
    with pytest.raises(SkipTrial, match="--model conv needs images"):
        jax_convnet.architecture(SETTINGS, shape, False, "gmm")
