"""The torch losses against closed forms, and the autodiff paths (fast and generic) against each other.

Closed forms use data N(mu, Sigma) and a linear score s(x) = -A(x - b) with a non-symmetric A, in float64.
Statistical tests compare a Monte Carlo mean with its expectation within 5 standard errors (a false alarm
has probability ~6e-7 under normality); every seed is fixed, so a pass is reproducible.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from benchbench_torch import autodiff, losses
from benchbench_torch.models import ACTIVATIONS, EnergyMLP, NoiseConditionalMLP, ScoreMLP

from benchbench.errors import ParameterError
from benchbench.noise import Preconditioning, sigma_ladder
from benchbench.plugins import get_plugins

N_SE = 5.0
F64 = torch.float64


def linear_problem(dim: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = np.eye(dim) + rng.standard_normal((dim, dim)) / np.sqrt(dim)
    b, mu = rng.standard_normal(dim), rng.standard_normal(dim)
    root = np.eye(dim) + rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return a, b, mu, root @ root.T, root


def linear_score(a: np.ndarray, b: np.ndarray):
    """s(x) = -A(x - b) as a plain closure: losses take the generic torch.func path."""
    a_, b_ = torch.as_tensor(a), torch.as_tensor(b)
    return lambda x, sigma=None: -(x - b_) @ a_.T


def gaussian_batch(mu, root, n: int, seed: int) -> torch.Tensor:
    return torch.as_tensor(mu + np.random.default_rng(seed).standard_normal((n, len(mu))) @ root.T)


def batch_objective(a, b, x: torch.Tensor) -> float:
    """J on the batch: mean of 1/2 ||A(x - b)||^2 - tr(A)."""
    r = (x.numpy() - b) @ a.T
    return float(np.mean(0.5 * np.sum(r * r, axis=1)) - np.trace(a))


def draws(loss, n_draws: int, seed: int = 1) -> np.ndarray:
    rng = torch.Generator().manual_seed(seed)
    return np.array([float(loss(rng)) for _ in range(n_draws)])


def assert_mean(values: np.ndarray, expected: float) -> None:
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - expected) < N_SE * se, (values.mean(), expected, se)


# -- closed forms ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", [m for m in autodiff.TRACE_METHODS if m not in autodiff.FAST_TRACES])
@pytest.mark.parametrize("chunk", [0, 2])
def test_exact_loss_equals_the_objective_on_the_batch(method, chunk):
    a, b, mu, _, root = linear_problem()
    x = gaussian_batch(mu, root, 64, seed=3)
    value = losses.exact_loss(linear_score(a, b), x, torch.Generator(), chunk=chunk, method=method)
    assert float(value) == pytest.approx(batch_objective(a, b, x), rel=1e-12)


def test_exact_loss_matches_the_population_closed_form():
    """E J = 1/2 [tr(A Sigma A') + ||A(mu - b)||^2] - tr(A), on a large float64 sample."""
    a, b, mu, sigma, root = linear_problem(dim=4, seed=5)
    expected = 0.5 * (np.trace(a @ sigma @ a.T) + np.sum((a @ (mu - b)) ** 2)) - np.trace(a)
    values = np.array(
        [float(losses.exact_loss(linear_score(a, b), gaussian_batch(mu, root, 2000, s), None)) for s in range(40)]
    )
    assert_mean(values, expected)


@pytest.mark.parametrize("name", ["sliced", "hutchinson"])
@pytest.mark.parametrize("projection", losses.PROJECTIONS)
@pytest.mark.parametrize("n_projections", [1, 3])
def test_projection_losses_are_unbiased_for_the_exact_objective(name, projection, n_projections):
    """Each call sees 100 copies of one batch of 16, so it averages 100 independent draws of the estimator on
    that batch; 40 calls give the mean and its standard error (4000 draws in all)."""
    a, b, mu, _, root = linear_problem()
    x = gaussian_batch(mu, root, 16, seed=2)
    copies = x.repeat(100, 1)
    loss = getattr(losses, f"{name}_loss")
    values = draws(lambda rng: loss(linear_score(a, b), copies, rng, n_projections, projection), 40)
    assert_mean(values, batch_objective(a, b, x))


def _variance_bound(values: np.ndarray) -> float:
    """N_SE standard errors of the sample variance: sqrt((m4 - s^4 (R-3)/(R-1)) / R)."""
    centred = values - values.mean()
    m4, var, r = np.mean(centred**4), centred.var(ddof=1), len(values)
    return N_SE * np.sqrt((m4 - var**2 * (r - 3) / (r - 1)) / r)


@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
@pytest.mark.parametrize("n_projections", [1, 4])
def test_hutchinson_variance_matches_the_trace_estimator_formula(projection, n_projections):
    """Var v'Av = 2||A_sym||_F^2 (Gaussian), 2(||A_sym||_F^2 - sum A_ii^2) (Rademacher); / M probes, / n examples.

    With a linear score the 1/2||s||^2 term is fixed by the batch, so the loss's variance is the trace
    estimator's alone.
    """
    a, b, mu, _, root = linear_problem()
    n = 4
    x = gaussian_batch(mu, root, n, seed=2)
    values = draws(lambda rng: losses.hutchinson_loss(linear_score(a, b), x, rng, n_projections, projection), 2500)
    sym = 0.5 * (a + a.T)
    per_probe = 2 * np.sum(sym**2) - (2 * np.sum(np.diag(a) ** 2) if projection == "rademacher" else 0)
    expected = per_probe / (n_projections * n)
    assert abs(values.var(ddof=1) - expected) < _variance_bound(values), (values.var(ddof=1), expected)


def test_denoising_loss_matches_its_closed_form():
    """1/2 [tr(A Sigma A') + ||A(mu - b)||^2 + sigma^2 tr(AA') - 2 tr(A) + d / sigma^2]."""
    a, b, mu, sigma_x, root = linear_problem(dim=4, seed=7)
    sigma, d = 0.3, 4
    expected = 0.5 * (
        np.trace(a @ sigma_x @ a.T)
        + np.sum((a @ (mu - b)) ** 2)
        + sigma**2 * np.trace(a @ a.T)
        - 2 * np.trace(a)
        + d / sigma**2
    )
    score = linear_score(a, b)
    values = np.array(
        [
            float(
                losses.denoising_loss(score, gaussian_batch(mu, root, 2000, s), torch.Generator().manual_seed(s), sigma)
            )
            for s in range(40)
        ]
    )
    assert_mean(values, expected)


def test_multiscale_loss_matches_its_closed_form_averaged_over_the_ladder():
    """Per level, sigma^2 times the DSM closed form; one level per example, uniform over the ladder."""
    a, b, mu, sigma_x, root = linear_problem(dim=3, seed=9)
    d, sigmas = 3, sigma_ladder(0.1, 2.0, 4)
    data_term = np.trace(a @ sigma_x @ a.T) + np.sum((a @ (mu - b)) ** 2)
    per_level = 0.5 * (sigmas**2 * (data_term - 2 * np.trace(a)) + sigmas**4 * np.trace(a @ a.T) + d)
    score = linear_score(a, b)
    values = np.array(
        [
            float(
                losses.multiscale_denoising_loss(
                    score, gaussian_batch(mu, root, 2000, s), torch.Generator().manual_seed(s), 0.1, 2.0, 4, "ncsn"
                )
            )
            for s in range(40)
        ]
    )
    assert_mean(values, per_level.mean())


def test_noise_ladder_is_geometric_and_descending():
    sigmas = sigma_ladder(0.01, 1.0, 10)
    assert sigmas[0] == pytest.approx(1.0) and sigmas[-1] == pytest.approx(0.01)
    assert np.allclose(sigmas[1:] / sigmas[:-1], sigmas[1] / sigmas[0])
    with pytest.raises(ParameterError, match="sigma_min=2.0 is larger than sigma_max=1.0"):
        sigma_ladder(2.0, 1.0, 3)


def test_sphere_projections_have_norm_sqrt_d_and_identity_second_moment():
    x = torch.zeros(20000, 6, dtype=F64)
    v = losses.projections(x, torch.Generator().manual_seed(0), 1, "sphere")[:, 0]
    assert torch.allclose(v.norm(dim=1), torch.full((20000,), 6**0.5, dtype=F64))
    assert torch.allclose(v.T @ v / len(v), torch.eye(6, dtype=F64), atol=0.05)


# -- autodiff: every path against every other ------------------------------------------------------
def _mlp(dim=5, activation="softplus", seed=0) -> ScoreMLP:
    torch.manual_seed(seed)
    return ScoreMLP(dim, 16, 3, activation).to(F64)


def _reference_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    return torch.func.vmap(torch.func.jacrev(lambda y: fn(y.unsqueeze(0)).squeeze(0)))(x)


def _autograd_score(net):
    """A callable torch.func refuses (it calls requires_grad_), as a user's hand-written model might."""

    def score(x):
        return net(x if x.requires_grad else x.detach().requires_grad_(True))

    return score


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_forward_tangent_fast_path_agrees_with_generic_autodiff(activation):
    net = _mlp(activation=activation)
    x = torch.randn(9, 5, dtype=F64, generator=torch.Generator().manual_seed(1))
    jacobian = _reference_jacobian(lambda y: net(y), x)
    for chunk in (0, 2):
        s, trace = net.tangent_trace(x, chunk)
        assert torch.allclose(s, net(x), atol=1e-12)
        assert torch.allclose(trace, torch.diagonal(jacobian, dim1=1, dim2=2).sum(1), atol=1e-12)
    v = torch.randn(9, 3, 5, dtype=F64)
    _, jv = net.tangent_jvp(x, v)
    assert torch.allclose(jv, torch.einsum("bij,bkj->bki", jacobian, v), atol=1e-12)


@pytest.mark.parametrize("method", autodiff.TRACE_METHODS)
@pytest.mark.parametrize("chunk", [0, 2])
def test_every_trace_method_and_chunk_gives_the_same_value_and_gradient(method, chunk):
    """Also the parameter gradient, which training uses: checkpointed blocks must not change it."""
    net = _mlp()
    x = torch.randn(6, 5, dtype=F64, generator=torch.Generator().manual_seed(2))
    reference = torch.diagonal(_reference_jacobian(lambda y: net(y), x), dim1=1, dim2=2).sum(1)
    reference_grad = torch.autograd.grad(reference.sum(), net.out.weight)[0]
    score_fn = net if method in ("auto", *autodiff.FAST_TRACES) else (lambda y: net(y))
    _, trace = autodiff.score_and_trace(score_fn, x, chunk, method)
    assert torch.allclose(trace, reference, atol=1e-12)
    assert torch.allclose(torch.autograd.grad(trace.sum(), net.out.weight)[0], reference_grad, atol=1e-12)


def test_auto_falls_back_to_reverse_mode_for_callables_torch_func_refuses():
    net = _mlp()
    x = torch.randn(6, 5, dtype=F64, generator=torch.Generator().manual_seed(3))
    jacobian = _reference_jacobian(lambda y: net(y), x)
    _, trace = autodiff.score_and_trace(_autograd_score(net), x, chunk=2)
    assert torch.allclose(trace, torch.diagonal(jacobian, dim1=1, dim2=2).sum(1), atol=1e-12)
    v = torch.randn(6, 3, 5, dtype=F64)
    for directions in (v, v[:, :1]):
        _, quadratic = autodiff.score_and_quadratic(_autograd_score(net), x, directions)
        assert torch.allclose(quadratic, torch.einsum("bki,bij,bkj->bk", directions, jacobian, directions), atol=1e-12)


@pytest.mark.parametrize("path", ["fast", "reverse"])
def test_quadratic_form_paths_agree(path):
    net = _mlp()
    x = torch.randn(6, 5, dtype=F64, generator=torch.Generator().manual_seed(4))
    v = torch.randn(6, 3, 5, dtype=F64)
    expected = torch.einsum("bki,bij,bkj->bk", v, _reference_jacobian(lambda y: net(y), x), v)
    compute = {
        "fast": lambda d: autodiff.score_and_quadratic(net, x, d),
        "reverse": lambda d: autodiff._reverse_quadratic(lambda y: net(y), x, d),
    }[path]
    for directions, reference in ((v, expected), (v[:, :1], expected[:, :1])):
        s, quadratic = compute(directions)
        assert torch.allclose(s, net(x), atol=1e-12)
        assert torch.allclose(quadratic, reference, atol=1e-12)


def test_energy_mlp_trace_is_minus_the_laplacian():
    """The Laplacian by central finite differences of the energy's gradient, independent of the trace code."""
    torch.manual_seed(0)
    net = EnergyMLP(4, 16, 2, "softplus").to(F64)
    x = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(5))
    h, eye = 1e-5, torch.eye(4, dtype=F64)

    def grad_energy(y: torch.Tensor) -> torch.Tensor:
        y = y.detach().requires_grad_(True)
        return torch.autograd.grad(net.energy(y).sum(), y)[0]

    laplacian = sum((grad_energy(x + h * eye[i]) - grad_energy(x - h * eye[i]))[:, i] / (2 * h) for i in range(4))
    for method in ("auto", "jacfwd", "jacrev", "jvp-basis", "loop"):
        _, trace = autodiff.score_and_trace(net, x, chunk=3, method=method)
        assert torch.allclose(trace, -laplacian, atol=1e-7), method


def test_noise_conditional_mlp_divides_by_sigma():
    torch.manual_seed(0)
    net = NoiseConditionalMLP(3, 8, 2, "tanh", energy=False, preconditioning=Preconditioning("ncsn")).to(F64)
    x = torch.randn(4, 3, dtype=F64)
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=F64)
    inner = net.f(torch.cat([x, sigma.log().unsqueeze(1)], dim=1))
    assert torch.allclose(net(x, sigma), inner / sigma.unsqueeze(1))


def test_method_errors_name_the_problem():
    x = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(ParameterError, match="forward-tangent.*has none"):
        losses.exact_loss(lambda y: -y, x, None, method="forward-tangent")
    with pytest.raises(ParameterError, match="method='nope' is not valid"):
        losses.exact_loss(lambda y: -y, x, None, method="nope")
    with pytest.raises(ParameterError, match="projection='cube' is not valid"):
        losses.sliced_loss(lambda y: -y, x, torch.Generator(), projection="cube")


def test_every_objective_is_declared_with_both_backends_and_bounded_params():
    objectives = {name: get_plugins().get("objective", name) for name in get_plugins().names("objective")}
    expected = {"exact", "sliced", "hutchinson", "denoising", "denoising-multiscale", "diffusion-ve", "diffusion-vp"}
    assert expected <= set(objectives)
    for name in expected:
        objective = objectives[name]
        assert set(objective.losses) == {"torch", "jax"} and objective.reference and objective.description
        assert callable(objective.loss_for("torch"))
        for param in objective.params:
            assert param.choices or param.low is not None, (name, param.name)
    assert objectives["denoising-multiscale"].noise_conditional and objectives["denoising"].biased
    assert not objectives["sliced"].biased and not objectives["exact"].noise_conditional
