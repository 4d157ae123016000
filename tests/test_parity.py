"""Torch and JAX agree: identical weights give the same scores, losses and parameter gradients (float64).

Randomness is shared, not re-drawn: the probes of sliced/hutchinson are handed to the torch loss by replacing
its ``projections`` for the test and to the JAX ``*_core`` functions directly; for the denoising losses the torch
generator is replayed (same seed, same draws in the loss's order) to recover the noise it drew, and that noise is
fed to the JAX core. The torch losses are called exactly as the torch train loop calls them, on the module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from benchbench_jax import losses as jax_losses
from benchbench_jax.models import Architecture, score, score_function
from benchbench_torch import losses as torch_losses
from benchbench_torch.models import build_model

from benchbench.noise import Preconditioning
from benchbench.trial import Settings

RTOL = 1e-6
DIM, N = 5, 12


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def pair(model: str = "mlp", noise_conditional: bool = False, activation: str = "softplus"):
    """A torch network and the same weights as JAX parameters, with its JAX architecture."""
    torch.manual_seed(0)
    settings = Settings(model=model, width=16, depth=3, activation=activation)
    net = build_model(settings, DIM, noise_conditional).double()
    names = [name.rsplit(".", 2)[-2:] for name, _ in net.named_parameters()]
    assert [kind for _, kind in names] == ["weight", "bias"] * 4, names  # hidden.0 .. hidden.2, out
    tensors = [p.detach().numpy() for p in net.parameters()]
    params = {"layers": [{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in zip(tensors[::2], tensors[1::2])]}
    arch = Architecture(DIM, 16, 3, activation, energy=model == "energy-mlp", noise_conditional=noise_conditional)
    return net, arch, params


def batch(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((N, DIM))


def assert_same(net, torch_loss, jax_loss, params) -> None:
    """The loss value and every parameter gradient, torch (backward on the module) against JAX (grad)."""
    net.zero_grad(set_to_none=True)
    torch_value = torch_loss()
    torch_value.backward()
    jax_value, jax_grads = jax.value_and_grad(jax_loss)(params)
    np.testing.assert_allclose(float(jax_value), torch_value.item(), rtol=RTOL)
    # The energy's output bias does not move the score: torch leaves its grad None, JAX gives zeros.
    torch_grads = [np.zeros(p.shape) if p.grad is None else p.grad.numpy() for p in net.parameters()]
    leaves = [g for layer in jax_grads["layers"] for g in (layer["w"], layer["b"])]
    assert len(leaves) == len(torch_grads)
    for i, (got, want) in enumerate(zip(leaves, torch_grads)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-10, err_msg=f"gradient of parameter {i}")


@pytest.mark.parametrize(
    "model, noise_conditional", [("mlp", False), ("energy-mlp", False), ("mlp", True), ("energy-mlp", True)]
)
def test_same_scores(model, noise_conditional):
    net, arch, params = pair(model, noise_conditional)
    x = batch()
    sigma = np.linspace(0.1, 1.0, N)
    with torch.no_grad() if model == "mlp" else torch.enable_grad():
        args = (torch.tensor(x),) + ((torch.tensor(sigma),) if noise_conditional else ())
        expected = net(*args).detach().numpy()
    got = score(arch, params, jnp.asarray(x), jnp.asarray(sigma) if noise_conditional else None)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "model, method, chunk",
    [
        ("mlp", "auto", 0),
        ("mlp", "forward-tangent", 2),
        ("mlp", "jvp-basis", 0),
        ("mlp", "jacrev", 3),
        ("mlp", "loop", 0),
        ("energy-mlp", "auto", 0),
        ("energy-mlp", "jacfwd", 2),
    ],
)
def test_exact(model, method, chunk):
    net, arch, params = pair(model)
    x = batch()
    assert_same(
        net,
        lambda: torch_losses.exact_loss(net, torch.tensor(x), torch.Generator(), chunk, method),
        lambda p: jax_losses.exact_loss(score_function(arch, p), jnp.asarray(x), jax.random.key(0), chunk, method),
        params,
    )


@pytest.mark.parametrize("name", ["sliced", "hutchinson"])
@pytest.mark.parametrize("model", ["mlp", "energy-mlp"])
def test_projection_losses_with_shared_probes(monkeypatch, name, model):
    net, arch, params = pair(model)
    x = batch()
    v = np.random.default_rng(1).standard_normal((N, 3, DIM))  # torch's layout: (n, k, d)
    monkeypatch.setattr(torch_losses, "projections", lambda x, rng, n_projections, projection: torch.tensor(v))
    core = getattr(jax_losses, f"{name}_core")
    assert_same(
        net,
        lambda: getattr(torch_losses, f"{name}_loss")(net, torch.tensor(x), torch.Generator(), 3, "gaussian"),
        lambda p: core(score_function(arch, p), jnp.asarray(x), jnp.asarray(v.transpose(1, 0, 2))),
        params,
    )


def test_denoising_with_replayed_noise():
    net, arch, params = pair()
    x, sigma = batch(), 0.3
    z = torch.randn((N, DIM), generator=torch.Generator().manual_seed(7), dtype=torch.float64).numpy()
    assert_same(
        net,
        lambda: torch_losses.denoising_loss(net, torch.tensor(x), torch.Generator().manual_seed(7), sigma),
        lambda p: jax_losses.denoising_core(score_function(arch, p), jnp.asarray(x), jnp.asarray(z), sigma),
        params,
    )


@pytest.mark.parametrize("model", ["mlp", "energy-mlp"])
def test_multiscale_denoising_with_replayed_noise(model):
    net, arch, params = pair(model, noise_conditional=True)
    x, ladder = batch(), jax_losses.sigma_ladder(0.05, 1.0, 4)
    replay = torch.Generator().manual_seed(7)
    levels = torch.randint(0, 4, (N,), generator=replay).numpy()
    z = torch.randn((N, DIM), generator=replay, dtype=torch.float64).numpy()
    assert len(set(levels)) > 1
    assert_same(
        net,
        lambda: torch_losses.multiscale_denoising_loss(
            net, torch.tensor(x), torch.Generator().manual_seed(7), 0.05, 1.0, 4
        ),
        lambda p: jax_losses.multiscale_denoising_core(
            score_function(arch, p),
            jnp.asarray(x),
            jnp.asarray(z),
            jnp.asarray(ladder[levels]),
            jnp.asarray(Preconditioning().loss_weight(ladder[levels])),
        ),
        params,
    )


def test_the_comparison_can_fail():
    """A one-ulp-scale change would pass; a perturbed weight must not."""
    net, arch, params = pair()
    x = batch()
    params["layers"][1]["w"] = params["layers"][1]["w"].at[0, 0].add(1e-3)
    with pytest.raises(AssertionError):
        assert_same(
            net,
            lambda: torch_losses.exact_loss(net, torch.tensor(x), torch.Generator(), 0, "auto"),
            lambda p: jax_losses.exact_loss(score_function(arch, p), jnp.asarray(x), jax.random.key(0), 0, "auto"),
            params,
        )
