"""Langevin samplers: the NCSN mode-weight regression, Gaussian stationary moments, torch/JAX parity with the
numpy reference on shared noise, schedules, and the registration seen through EvalContext."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from benchbench_samplers import reference
from benchbench_samplers.schedule import AUTO_EPS_RATIO, annealed_plan

from benchbench.errors import ParameterError
from benchbench.evaluation import EvalContext
from benchbench.plugins import get_plugins
from benchbench.specs import Data, TrainResult
from benchbench.trial import Settings

# ncsn-mixture: 0.8 N((5,5), I) + 0.2 N((-5,-5), I).
MEANS = np.array([[5.0, 5.0], [-5.0, -5.0]])
WEIGHTS = np.array([0.8, 0.2])
NCSN_SIGMAS = np.geomspace(20.0, 1.0, 10)


def mixture_score(x: np.ndarray, sigma=None) -> np.ndarray:
    """Score of the mixture convolved with N(0, sigma^2 I): each component becomes N(m_k, (1 + sigma^2) I)."""
    var = 1.0 + (0.0 if sigma is None else np.reshape(sigma, (-1, 1)) ** 2)
    diff = x[:, None, :] - MEANS[None]
    logits = np.log(WEIGHTS) - 0.5 * np.sum(diff**2, axis=-1) / var
    resp = np.exp(logits - logits.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    return -np.einsum("nk,nkd->nd", resp, diff) / var


class NumpyModel:
    backend = "numpy"

    def __init__(self, score, sigmas=None):
        self._score, self.sigmas, self.noise_conditional = score, sigmas, sigmas is not None

    def score(self, x, sigma=None):
        return self._score(x, sigma)


class TorchMixture:
    """A torch stand-in with the attributes the torch sampler uses."""

    backend = "torch"

    def __init__(self, sigmas=None):
        import torch

        self.device, self.dtype = torch.device("cpu"), torch.float64
        self.sigmas, self.noise_conditional = sigmas, sigmas is not None
        self.means = torch.as_tensor(MEANS)
        self.log_weights = torch.log(torch.as_tensor(WEIGHTS))

    def score_tensor(self, x, sigma):
        var = 1.0 + (0.0 if sigma is None else sigma[:, None] ** 2)
        diff = x[:, None, :] - self.means
        resp = (self.log_weights - 0.5 * (diff**2).sum(-1) / var).softmax(dim=1)
        return -(resp[:, :, None] * diff).sum(1) / var

    def score(self, x, sigma=None):
        import torch

        sig = None if sigma is None else torch.full((len(x),), sigma, dtype=torch.float64)
        return self.score_tensor(torch.as_tensor(x), sig).numpy()


class JaxMixture:
    """A JAX stand-in: pure ``apply(params, x, sigma)`` with sigma None or (n,)."""

    backend = "jax"

    def __init__(self, sigmas=None, dtype="float32"):
        import jax.numpy as jnp

        self.sigmas, self.noise_conditional = sigmas, sigmas is not None
        self.params = {"means": jnp.asarray(MEANS, dtype=dtype), "log_weights": jnp.log(jnp.asarray(WEIGHTS, dtype))}

    @staticmethod
    def apply(params, x, sigma):
        import jax

        var = 1.0 + (0.0 if sigma is None else sigma[:, None] ** 2)
        diff = x[:, None, :] - params["means"]
        resp = jax.nn.softmax(params["log_weights"] - 0.5 * (diff**2).sum(-1) / var, axis=1)
        return -(resp[:, :, None] * diff).sum(1) / var

    def score(self, x, sigma=None):
        import jax.numpy as jnp

        sig = None if sigma is None else jnp.full((len(x),), sigma)
        return np.asarray(self.apply(self.params, jnp.asarray(x), sig))


def share_of_heavy_mode(samples: np.ndarray) -> float:
    nearest = np.argmin(((samples[:, None, :] - MEANS) ** 2).sum(-1), axis=1)
    return float(np.mean(nearest == 0))


def uniform_start(n: int = 1280, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-8.0, 8.0, size=(n, 2))


NCSN_LANGEVIN = {"eps": 0.1, "n_steps": 1000}
NCSN_ANNEALED = {"eps": 0.1, "steps_per_level": 100, "sigma_max": 20.0, "sigma_min": 1.0, "n_sigmas": 10}


# Song & Ermon (2019), Fig. 3: from U[-8, 8]^2, plain Langevin keeps the initial ~50/50 split between the
# modes; annealed Langevin recovers the 0.8 weight. With 1280 particles a share has s.e. ~0.014: +-0.05 is
# 3.5 s.e., and the two expected values are 20 s.e. apart.
def test_plain_langevin_keeps_the_initial_split():
    samples = reference.langevin(NumpyModel(mixture_score), uniform_start(), 1, **NCSN_LANGEVIN)
    assert share_of_heavy_mode(samples) == pytest.approx(0.5, abs=0.05)


def test_annealed_langevin_recovers_the_mode_weights():
    samples = reference.annealed_langevin(NumpyModel(mixture_score, NCSN_SIGMAS), uniform_start(), 1, **NCSN_ANNEALED)
    assert share_of_heavy_mode(samples) == pytest.approx(0.8, abs=0.05)
    assert np.abs(samples).max() < 12.0


def test_langevin_reaches_the_discretised_gaussian_variance():
    """For N(0, v I), x <- x (1 - eps/2v) + sqrt(eps) z is stationary at variance v / (1 - eps/4v): a drift of
    eps instead of eps/2 would give about v/2, a noise of sqrt(2 eps) about 2v."""
    v, eps = 1.0, 0.05
    model = NumpyModel(lambda x, sigma: -x / v)
    x0 = np.random.default_rng(0).uniform(-3, 3, size=(4000, 2))
    samples = reference.langevin(model, x0, 3, eps=eps, n_steps=400)
    assert np.var(samples, axis=0) == pytest.approx([v / (1 - eps / (4 * v))] * 2, rel=0.08)
    assert np.abs(samples.mean(axis=0)).max() < 0.06


def _torch_normal(seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return lambda shape: torch.randn(shape, generator=generator, dtype=torch.float64).numpy()


def _jax_normal(seed: int):
    import jax

    state = {"key": jax.random.key(seed)}

    def normal(shape):
        state["key"], sub = jax.random.split(state["key"])
        return np.asarray(jax.random.normal(sub, shape, dtype="float64"))

    return normal


SHORT_LANGEVIN = {"eps": 0.1, "n_steps": 40}
SHORT_ANNEALED = {"eps": 0.1, "steps_per_level": 15, "sigma_max": 0.0, "sigma_min": 0.0, "n_sigmas": 0}


@pytest.mark.parametrize("kind", ["langevin", "annealed_langevin"])
def test_torch_sampler_is_the_reference_chain_on_the_same_noise(kind, one_torch_thread):
    from benchbench_samplers import torch_langevin

    sigmas = NCSN_SIGMAS[::3]
    model = TorchMixture(sigmas)
    params = SHORT_LANGEVIN if kind == "langevin" else SHORT_ANNEALED
    x0 = uniform_start(256)
    got = getattr(torch_langevin, kind)(model, x0, 11, **params)
    expected = getattr(reference, kind)(NumpyModel(mixture_score, sigmas), x0, 11, **params, normal=_torch_normal(11))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    assert np.abs(got - x0).mean() > 1.0  # the chains moved


@pytest.mark.parametrize("kind", ["langevin", "annealed_langevin"])
def test_jax_sampler_is_the_reference_chain_on_the_same_keys(kind):
    import jax
    from benchbench_samplers import jax_langevin

    sigmas = NCSN_SIGMAS[::3]
    params = SHORT_LANGEVIN if kind == "langevin" else SHORT_ANNEALED
    x0 = uniform_start(256)
    with jax.enable_x64(True):
        got = getattr(jax_langevin, kind)(JaxMixture(sigmas, "float64"), x0, 5, **params)
        expected = getattr(reference, kind)(NumpyModel(mixture_score, sigmas), x0, 5, **params, normal=_jax_normal(5))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert np.abs(got - x0).mean() > 1.0


@pytest.fixture
def one_torch_thread():
    """Tiny per-step ops: on the shared 2-core CI machine two intra-op threads made 1000 steps take 4.8 s
    against 0.57 s with one (measured under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_backend_samplers_reproduce_the_annealed_regression(backend, one_torch_thread):
    """Plain Langevin is the same chain code with one level, checked value for value above."""
    module = importlib.import_module(f"benchbench_samplers.{backend}_langevin")
    model = TorchMixture(NCSN_SIGMAS) if backend == "torch" else JaxMixture(NCSN_SIGMAS)
    annealed = module.annealed_langevin(model, uniform_start(seed=2), 4, **NCSN_ANNEALED)
    assert share_of_heavy_mode(annealed) == pytest.approx(0.8, abs=0.05)


def test_jax_sampler_keeps_float32_models_in_float32():
    from benchbench_samplers import jax_langevin

    samples = jax_langevin.langevin(JaxMixture(), uniform_start(64), 0, eps=0.1, n_steps=5)
    assert samples.dtype == np.float32 and samples.shape == (64, 2)


def test_annealed_schedule_follows_ncsn():
    model = NumpyModel(mixture_score, NCSN_SIGMAS)
    levels = annealed_plan(model, 0.1, 100, 0.0, 0.0, 0)
    assert [lv.sigma for lv in levels] == pytest.approx(list(NCSN_SIGMAS))
    assert [lv.step_size for lv in levels] == pytest.approx(list(0.1 * (NCSN_SIGMAS / NCSN_SIGMAS[-1]) ** 2))
    assert levels[-1].step_size == pytest.approx(0.1) and all(lv.n_steps == 100 for lv in levels)
    auto = annealed_plan(model, 0.0, 10, 0.0, 0.0, 0)
    assert auto[-1].step_size == pytest.approx(AUTO_EPS_RATIO * NCSN_SIGMAS[-1] ** 2)
    explicit = annealed_plan(model, 0.1, 10, 4.0, 0.5, 4)
    assert [lv.sigma for lv in explicit] == pytest.approx([4.0, 2.0, 1.0, 0.5])


def test_annealed_schedule_for_a_model_without_sigmas():
    clean = NumpyModel(mixture_score)
    with pytest.raises(ParameterError, match="no sigma ladder"):
        annealed_plan(clean, 0.1, 10, 0.0, 0.0, 0)
    with pytest.raises(ParameterError, match="sigma_min"):
        annealed_plan(clean, 0.1, 10, 1.0, 2.0, 3)
    levels = annealed_plan(clean, 0.1, 10, 20.0, 1.0, 10)
    assert all(lv.sigma is None for lv in levels)  # annealed step sizes only
    assert levels[0].step_size == pytest.approx(0.1 * 400)


def test_samplers_are_registered_for_every_backend():
    plugins = get_plugins()
    for name in ("langevin", "annealed-langevin", "reverse-sde", "probability-flow"):
        assert set(plugins.get("sampler", name).samplers) == {"torch", "jax", "numpy"}
    code = (
        "import sys, benchbench_samplers.plugin, benchbench_metrics.plugin; "
        "print(sorted(m for m in ('torch', 'jax', 'mlflow') if m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def _context(model, sampler=None, sampler_params=None) -> EvalContext:
    train = uniform_start(500)
    data = Data("mixture", train=train, test=train[:100], shape=(2,), score=mixture_score)
    settings = Settings(n_samples=300, sampler=sampler, sampler_params=sampler_params or {})
    trial = SimpleNamespace(backend="numpy", settings=settings, objective_params={}, run_name="t")
    result = TrainResult(model=model, losses=np.zeros(3), steps=3, train_s=1.0, compile_s=0.0)
    return EvalContext(data=data, result=result, trial=trial, plugins=get_plugins(), seed=0)


@pytest.mark.parametrize(("sigmas", "expected"), [(None, "langevin"), (NCSN_SIGMAS, "annealed-langevin")])
def test_eval_context_samples_with_the_default_sampler(sigmas, expected):
    ctx = _context(NumpyModel(mixture_score, sigmas))
    samples = ctx.samples
    assert ctx.sampler_used == expected and samples.shape == (300, 2) and ctx.sampling_s > 0
    assert np.all(np.abs(samples) < 12)


def test_eval_context_passes_sampler_parameters():
    """One tiny step leaves the uniform start in place, where the default 1000 steps gather it at the modes."""

    def near_modes(samples):
        return float(np.mean(np.min(np.linalg.norm(samples[:, None] - MEANS, axis=-1), axis=1) < 3.0))

    assert near_modes(_context(NumpyModel(mixture_score)).samples) > 0.95
    ctx = _context(NumpyModel(mixture_score), "langevin", {"eps": 1e-12, "n_steps": 1})
    assert near_modes(ctx.samples) < 0.3 and ctx.sampler_used == "langevin"


# -- reverse SDE and probability flow ----------------------------------------------------------------------------

SDE_SHORT = {"n_steps": 30, "sigma_max": 0.0, "sigma_min": 0.0}


@pytest.mark.parametrize("kind", ["reverse_sde", "probability_flow"])
def test_torch_sde_samplers_are_the_reference_on_the_same_noise(kind, one_torch_thread):
    from benchbench_samplers import torch_sde

    model, x0 = TorchMixture(NCSN_SIGMAS), uniform_start(256)
    got = getattr(torch_sde, kind)(model, x0, 3, **SDE_SHORT)
    expected = getattr(reference, kind)(
        NumpyModel(mixture_score, NCSN_SIGMAS), x0, 3, **SDE_SHORT, normal=_torch_normal(3)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert np.abs(got - x0).mean() > 1.0


@pytest.mark.parametrize("kind", ["reverse_sde", "probability_flow"])
def test_jax_sde_samplers_are_the_reference_on_the_same_keys(kind):
    import jax
    from benchbench_samplers import jax_sde

    x0 = uniform_start(256)
    with jax.enable_x64(True):
        got = getattr(jax_sde, kind)(JaxMixture(NCSN_SIGMAS, "float64"), x0, 8, **SDE_SHORT)
        expected = getattr(reference, kind)(
            NumpyModel(mixture_score, NCSN_SIGMAS), x0, 8, **SDE_SHORT, normal=_jax_normal(8)
        )
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert np.abs(got - x0).mean() > 1.0


@pytest.mark.parametrize(
    ("module", "kind", "params"),
    [
        ("jax_langevin", "langevin", {"eps": 1e-3, "n_steps": 6}),
        ("jax_langevin", "annealed_langevin", {**NCSN_ANNEALED, "steps_per_level": 2, "n_sigmas": 3}),
        ("jax_sde", "reverse_sde", {"n_steps": 5, "sigma_max": 2.0, "sigma_min": 0.05}),
        ("jax_sde", "probability_flow", {"n_steps": 5, "sigma_max": 2.0, "sigma_min": 0.05}),
    ],
)
def test_jax_samplers_dispatch_a_conv_model_step_by_step_on_the_same_keys(module, kind, params):
    """The conv U-Net's chains run one jitted step per dispatch (XLA runs convolutions slowly in a scan): the
    chain must be the scanned one, key for key."""
    import jax
    import jax.numpy as jnp
    from benchbench_jax import convnet
    from benchbench_jax.models import init_params
    from benchbench_jax.trained import JaxModel

    arch = convnet.architecture(Settings(model="conv", width=32), (6, 6, 1), kind != "langevin")
    model = JaxModel(arch, init_params(arch, jax.random.key(0), jnp.float32), jax.devices("cpu")[0], NCSN_SIGMAS)
    sample = getattr(importlib.import_module(f"benchbench_samplers.{module}"), kind)
    x0 = np.random.default_rng(0).random((16, 36))
    assert not model.compiled_loops
    stepped = sample(model, x0, 3, **params)
    model.compiled_loops = True
    scanned = sample(model, x0, 3, **params)
    assert np.all(np.isfinite(stepped)) and np.abs(stepped - x0).mean() > 1e-3
    np.testing.assert_allclose(stepped, scanned, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["reverse_sde", "probability_flow"])
def test_sde_samplers_reach_a_gaussian(kind):
    """With the exact perturbed score of N(0, v I), -x / (v + sigma^2), both samplers end near N(0, v I): 4000
    samples give the variance to ~2.2% (s.e.); 10% allows for the discretisation of 200 / 50 steps."""
    v = 2.0
    model = NumpyModel(lambda x, sigma: -x / (v + sigma**2), np.geomspace(20.0, 0.01, 10))
    n_steps = 200 if kind == "reverse_sde" else 50
    x0 = np.random.default_rng(1).uniform(-1, 1, size=(4000, 2))
    samples = getattr(reference, kind)(model, x0, 2, n_steps=n_steps, sigma_max=0.0, sigma_min=0.0)
    assert np.var(samples, axis=0) == pytest.approx([v, v], rel=0.1)
    assert np.abs(samples.mean(axis=0)).max() < 0.15


def test_reverse_sde_recovers_the_ncsn_mode_weights():
    """The exact score, like annealed Langevin: the reverse SDE from sigma = 20 finds the 0.8 / 0.2 weights."""
    model = NumpyModel(mixture_score, NCSN_SIGMAS)
    samples = reference.reverse_sde(model, uniform_start(), 4, n_steps=300, sigma_max=0.0, sigma_min=0.0)
    assert share_of_heavy_mode(samples) == pytest.approx(0.8, abs=0.05)


def test_sde_samplers_need_a_noise_conditional_model():
    with pytest.raises(ParameterError, match="needs a noise-conditional model"):
        reference.reverse_sde(NumpyModel(mixture_score), uniform_start(8), 0, 10, 0.0, 0.0)
    with pytest.raises(ParameterError, match="not a ladder"):
        reference.probability_flow(NumpyModel(mixture_score, NCSN_SIGMAS), uniform_start(8), 0, 10, 1.0, 2.0)
