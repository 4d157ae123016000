"""The torch backend: the train loop's contract and checks, the trained model's API, and training itself.

Training tests run real trials through :func:`benchbench.runner.run_trial` on Gaussians N(0, I): the zero
score has Fisher divergence d/2 there, so the thresholds below are stated against that scale.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from benchbench_torch import autodiff, backend
from click.testing import CliRunner

from benchbench.cli import cli
from benchbench.commands.perf import perf_command
from benchbench.errors import SkipTrial, TrialFailure, UsageError
from benchbench.noise import sigma_ladder
from benchbench.params import resolve
from benchbench.perf import jobs_for, measure
from benchbench.plugins import get_plugins
from benchbench.runner import run_trial
from benchbench.specs import Data, Objective
from benchbench.training import fit
from benchbench.trial import Settings, Trial

F64 = torch.float64


def normal_data(dim: int = 3, n: int = 256, seed: int = 0) -> Data:
    x = np.random.default_rng(seed).standard_normal((n, dim))
    return Data(name="normal", train=x, test=x[:32], shape=(dim,))


def objective(name: str) -> Objective:
    return get_plugins().get("objective", name)


def train(name: str, data: Data | None = None, params: dict | None = None, seed: int = 0, **settings):
    obj = objective(name)
    hparams = resolve(name, obj.params, params or {})
    trial = Trial(name, hparams, "torch", "normal", {}, seed, Settings(**({"steps": 5, "width": 16} | settings)))
    return fit(backend.TorchProgram(trial, data or normal_data(), obj, hparams), trial)


# -- the train loop --------------------------------------------------------------------------------
def test_train_reports_losses_timings_and_memory():
    result = train("sliced", steps=7)
    assert result.losses.shape == (7,) and np.isfinite(result.losses).all()
    assert result.steps == 7 and result.train_s > 0 and result.compile_s > 0
    assert result.peak_memory_mb > 0 and "ru_maxrss" in result.memory_source and result.device == "cpu"
    assert result.model.backend == "torch" and not result.model.noise_conditional and result.model.sigmas is None


def test_training_is_seeded():
    first, again, other = (train("hutchinson", seed=s).losses for s in (0, 0, 1))
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_float64_on_request():
    result = train("exact", dtype="float64", model="energy-mlp")
    assert result.model.dtype == F64 and next(result.model.net.parameters()).dtype == F64


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            lambda x: x.sum(dim=1),
            r"objective 'broken' \(torch loss\) returned Tensor of shape \(128,\), expected a scalar",
        ),
        (lambda x: 1.5, r"objective 'broken' \(torch loss\) returned float, expected a scalar tensor"),
    ],
)
def test_a_loss_returning_the_wrong_thing_fails_the_trial_naming_it(returned, message):
    broken = Objective("broken", "returns the wrong thing", {"torch": lambda score_fn, x, rng: returned(x)})
    trial = Trial("broken", {}, "torch", "normal", {}, 0, Settings(steps=3, width=8))
    with pytest.raises(TrialFailure, match=message):
        fit(backend.TorchProgram(trial, normal_data(), broken, {}), trial)


def test_a_non_finite_loss_fails_the_trial_with_its_step():
    def explodes(score_fn, x, rng):
        step = explodes.calls = getattr(explodes, "calls", 0) + 1
        return score_fn(x).pow(2).mean() * (float("nan") if step == 11 else 1.0)

    trial = Trial("nan", {}, "torch", "normal", {}, 0, Settings(steps=60, width=8))
    with pytest.raises(TrialFailure, match=r"loss became nan at step 10"):
        fit(backend.TorchProgram(trial, normal_data(), Objective("nan", "", {"torch": explodes}), {}), trial)


def test_cuda_without_a_gpu_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="--device cuda: torch sees no CUDA device"):
        backend.resolve_device("cuda")
    assert backend.resolve_device("auto").type == "cpu"


def test_a_noise_conditional_objective_must_declare_its_ladder():
    bare = Objective(
        "ladderless", "", {"torch": lambda s, x, rng: s(x, torch.ones(len(x))).sum()}, noise_conditional=True
    )
    trial = Trial("ladderless", {}, "torch", "normal", {}, 0, Settings(steps=2, width=8))
    with pytest.raises(TrialFailure, match="does not declare sigma_min, sigma_max, n_sigmas"):
        fit(backend.TorchProgram(trial, normal_data(), bare, {}), trial)


# -- the trained model -----------------------------------------------------------------------------
def test_noise_conditional_model_exposes_its_ladder_and_takes_sigma_per_example():
    params = {"sigma_min": "0.05", "sigma_max": "2", "n_sigmas": "6"}
    model = train("denoising-multiscale", params=params, dtype="float64").model
    assert model.noise_conditional and np.allclose(model.sigmas, sigma_ladder(0.05, 2.0, 6))
    assert np.all(np.diff(model.sigmas) < 0)
    x = np.random.default_rng(1).standard_normal((5, 3))
    at_half = model.score(x, 0.5)
    per_example = model.score_tensor(torch.as_tensor(x), torch.full((5,), 0.5, dtype=F64))
    assert np.allclose(at_half, per_example.numpy())
    assert np.allclose(model.score(x), model.score(x, 0.05)), "no sigma: the smallest of the ladder"
    assert not np.allclose(model.score(x, 2.0), at_half)
    scores, traces = model.score_and_trace(x, 0.5)
    jacobian = torch.func.jacfwd(lambda y: model.score_tensor(y.unsqueeze(0), torch.tensor(0.5, dtype=F64))[0])
    expected = [torch.trace(jacobian(torch.as_tensor(row))).item() for row in x]
    assert np.allclose(scores, at_half) and np.allclose(traces, expected, atol=1e-10)


@pytest.mark.parametrize("model", ["mlp", "energy-mlp"])
def test_score_and_trace_is_exact_and_its_blocks_do_not_change_it(model, monkeypatch):
    trained = train("exact", dtype="float64", model=model).model
    x = np.random.default_rng(2).standard_normal((300, 3))
    scores, traces = trained.score_and_trace(x)
    net = trained.net
    with torch.no_grad():
        jacobian = torch.func.vmap(torch.func.jacrev(lambda y: net(y.unsqueeze(0)).squeeze(0)))(torch.as_tensor(x))
    assert np.allclose(scores, trained.score(x), atol=1e-12)
    assert np.allclose(traces, torch.diagonal(jacobian, dim1=1, dim2=2).sum(1).numpy(), atol=1e-10)
    monkeypatch.setattr(backend, "_TANGENT_ELEMENTS", 1)  # one basis vector per block
    assert np.allclose(trained.score_and_trace(x)[1], traces, atol=1e-12)


def test_the_torch_model_scores_without_building_a_graph():
    model = train("denoising").model
    scores = model.score_tensor(torch.zeros(4, 3))
    assert scores.shape == (4, 3) and not scores.requires_grad


# -- training --------------------------------------------------------------------------------------
TRAINING = Settings(steps=1000, lr=5e-3, batch_size=256, width=32, depth=1, n_samples=20)
# Thresholds: 1/20 (d = 2) and 1/8 (d = 16) of the zero score's Fisher divergence d/2. Measured with these
# settings: d = 2: 0.007-0.013; d = 16: 0.24-0.53 (sliced highest). A loss off by a factor (a missing 1/2,
# a trace divided by d as with unit-norm projections) learns s = -x/2 or -x/d: FD d/8 or about d/2, caught.
THRESHOLD = {2: 0.05, 16: 1.0}
# DSM at sigma = 0.3 has a bias of 0.007 (d = 2) and 0.05 (d = 16), far below the thresholds; smaller sigmas
# need more steps (the target z / sigma is noisy). The multiscale ladder stops at 0.3 for the same reason:
# fisher_divergence evaluates at sigma_min, where the 1/sigma output scaling magnifies f's error.
OBJECTIVES = ["exact", "sliced", "hutchinson", "denoising:sigma=0.3", "denoising-multiscale:sigma_min=0.3,n_sigmas=3"]


@pytest.fixture
def one_thread():
    """Training tests are overhead-bound on small networks, and two intra-op threads on a 2-core machine that
    other processes share wait on each other: measured median step 1.8 ms with one thread, 14 ms with two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_trial(spec: str, dim: int, settings: Settings = TRAINING) -> Trial:
    name, _, raw = spec.partition(":")
    params = dict(item.split("=") for item in raw.split(",")) if raw else {}
    plugins = get_plugins()
    return Trial(
        name,
        resolve(name, plugins.get("objective", name).params, params),
        "torch",
        "gaussian",
        resolve("gaussian", plugins.get("dataset", "gaussian").params, {"dim": dim, "n_train": 5000, "n_test": 2000}),
        0,
        settings,
    )


@pytest.mark.slow
@pytest.mark.parametrize("dim", [2, 16])
@pytest.mark.parametrize("spec", OBJECTIVES)
def test_every_objective_learns_the_score_of_a_gaussian(spec, dim, one_thread):
    metrics = run_trial(gaussian_trial(spec, dim)).metrics
    assert metrics["fisher_divergence"] < THRESHOLD[dim], metrics["fisher_divergence"]


@pytest.mark.slow
def test_denoising_learns_the_smoothed_score_so_its_fisher_divergence_is_the_closed_form_bias(one_thread):
    """For N(0, s^2 I) the sigma-smoothed score is -x/(s^2 + sigma^2): its Fisher divergence to the data's
    score is d sigma^4 / (2 s^2 (s^2 + sigma^2)^2), 0.25 for d = 2, s = 1, sigma = 1."""
    sigma, dim = 1.0, 2
    bias = dim * sigma**4 / (2 * (1 + sigma**2) ** 2)
    evaluated = run_trial(gaussian_trial(f"denoising:sigma={sigma}", dim))
    data, model = evaluated.ctx.data, evaluated.result.model
    smoothed = model.score(data.test) - data.perturbed_score(data.test, sigma)
    assert 0.5 * np.mean(np.sum(smoothed**2, axis=1)) < 0.05 * bias
    assert evaluated.metrics["fisher_divergence"] == pytest.approx(bias, rel=0.1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,model",
    [
        ("exact", "mlp"),
        ("sliced", "mlp"),
        ("denoising", "mlp"),
        ("denoising-multiscale", "mlp"),
        ("hutchinson", "energy-mlp"),
    ],
)
def test_the_compiled_step_trains_as_the_eager_step_does(name, model):
    """--compile fuses minibatch, loss, gradient and Adam into one graph: it must not change the maths. Both draw
    the same random numbers, so the seeded losses and the trained network agree to float32 rounding."""
    data = normal_data(dim=4, n=512)
    eager, compiled = (train(name, data, steps=12, compile=flag, model=model) for flag in (False, True))
    assert np.allclose(eager.losses, compiled.losses, rtol=1e-4, atol=1e-5), (eager.losses, compiled.losses)
    x = data.test[:64]
    assert np.allclose(eager.model.score(x), compiled.model.score(x), rtol=1e-3, atol=1e-5)
    assert not np.allclose(compiled.model.score(x), train(name, data, steps=1, model=model).model.score(x))


@pytest.mark.slow
def test_compiled_trials_in_one_process_each_run_their_own_step():
    """The compiled step skips dynamo's guards, so a later trial of the same objective (another network, other
    data) must never run an earlier trial's graph: each equals its own eager run."""
    for dim, seed in ((4, 0), (3, 1), (4, 2)):
        data = normal_data(dim=dim, n=256)
        eager, compiled = (train("denoising", data, seed=seed, steps=6, compile=flag) for flag in (False, True))
        assert np.allclose(eager.losses, compiled.losses, rtol=1e-4, atol=1e-5), (dim, seed)


@pytest.mark.slow
def test_a_combination_torch_compile_refuses_is_skipped_with_the_reason():
    """The loop reference differentiates autograd.grad(create_graph=True): aot_autograd has no double backward."""
    with pytest.raises(SkipTrial, match=r"--compile: torch.compile cannot compile objective 'exact' with --model mlp"):
        train("exact", params={"method": "loop"}, steps=2, compile=True)


def test_autodiff_methods_are_the_objective_choices():
    declared = next(p for p in objective("exact").params if p.name == "method").choices
    assert declared == autodiff.TRACE_METHODS


# -- bench perf ------------------------------------------------------------------------------------
PERF_KEYS = {"objective", "backend", "variant", "dim", "batch", "ms_median", "peak_memory_mb", "compile_s"}


def perf_records(*args: str) -> list[dict]:
    result = CliRunner().invoke(perf_command, ["-b", "torch", "--width", "8", "--depth", "1", "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_perf_times_each_objective_beside_the_exact_loop_through_the_backend():
    records = perf_records(
        "-o", "exact", "-o", "denoising:sigma=0.5", "--dim", "3", "--repeats", "2", "--steps", "4", "--in-process"
    )
    assert [(r["objective"], r["variant"]) for r in records] == [
        ("exact", "default"),
        ("exact", "method=loop"),
        ("denoising", "sigma=0.5"),
    ]
    for record in records:
        assert PERF_KEYS <= set(record) and record["error"] is None
        assert record["dim"] == 3 and record["batch"] == 128 and record["backend"] == "torch"
        assert record["ms_median"] > 0 and record["compile_s"] > 0 and record["peak_memory_mb"] > 0


def test_perf_measures_in_a_fresh_process_by_default():
    """The worker path: a fresh Python process measures the row and hands back its record as JSON."""
    (record,) = perf_records("-o", "denoising", "--dim", "2", "--repeats", "1", "--steps", "4", "--isolate")
    assert record["error"] is None and record["ms_median"] > 0 and "ru_maxrss" in record["memory_source"]


def test_perf_reports_a_backend_that_cannot_load_and_goes_on(tmp_path, monkeypatch):
    (tmp_path / "perf_broken_backend.py").write_text(
        "from benchbench import hookimpl\n"
        "from benchbench.specs import Backend, Objective\n"
        "@hookimpl\n"
        "def register_backends(register):\n"
        "    register(Backend('broken', 'its module does not exist', 'no_such_module:Program'))\n"
        "@hookimpl\n"
        "def register_objectives(register):\n"
        "    loss = 'benchbench_torch.losses:denoising_loss'\n"
        "    register(Objective('plain', 'denoising', {'broken': loss, 'torch': loss}))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = ("perf_broken_backend",)
    jobs = jobs_for(get_plugins(plugins), ["plain"], ["broken", "torch"], [2], 16, 1, 4, {"width": 8, "depth": 1})
    broken, works = (measure(job) for job in jobs)
    assert broken.error.startswith("backend 'broken': cannot load 'no_such_module:Program': ModuleNotFoundError")
    assert works.error is None and works.ms_median > 0


def test_perf_counts_a_steps_flops_and_its_floor():
    """A denoising step of a d-w-d MLP is five matmuls of 2 n d w FLOPs: two forward, three backward (the
    gradient of both weights and of the hidden layer; the input's gradient is never needed)."""
    plugins = get_plugins()
    settings = {"width": 8, "depth": 1}
    jobs = jobs_for(plugins, ["denoising"], ["torch", "jax"], [3], 128, 1, 4, settings)
    torch_row, jax_row = (measure(job) for job in jobs)
    assert torch_row.mflop_per_step * 1e6 == 5 * 2 * 128 * 3 * 8
    assert torch_row.mflop_per_step <= jax_row.mflop_per_step  # XLA counts the elementwise operations too
    for row in (torch_row, jax_row):
        assert row.matmul_gflop_per_s > 0.5
        assert row.floor_ms == pytest.approx(row.mflop_per_step / row.matmul_gflop_per_s)
        assert row.floor_ratio == pytest.approx(row.ms_median / row.floor_ms)


def test_perf_counts_the_flops_of_steps_that_take_a_gradient_inside_the_loss():
    """The U-Net's sliced step differentiates inside its loss (``autograd.grad``), which torch's FlopCounterMode
    refuses; the count must still come, and exceed the denoising step's: one more backward pass through the net,
    and the same sums as FlopCounterMode where that one can follow."""
    from torch.utils.flop_counter import FlopCounterMode

    settings = {"model": "conv", "width": 8}
    jobs = jobs_for(get_plugins(), ["denoising", "sliced"], ["torch"], [16], 4, 1, 4, settings)
    denoising, sliced = (measure(job) for job in jobs)
    assert denoising.error is None and sliced.error is None
    assert sliced.mflop_per_step > 1.5 * denoising.mflop_per_step > 0

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Softplus(), torch.nn.Linear(8, 3))

    def step():
        torch.manual_seed(0)
        net(torch.randn(2, 1, 8, 8)).pow(2).sum().backward()

    with FlopCounterMode(display=False) as theirs:
        step()
    with backend._FlopCount() as ours:
        step()
    assert ours.total == theirs.get_total_flops() > 0


def test_perf_times_the_conv_u_net_on_square_images():
    (record,) = perf_records(
        "-o", "denoising", "--model", "conv", "--dim", "16", "--repeats", "1", "--steps", "4", "--in-process"
    )
    assert record["error"] is None and record["dim"] == 16 and record["ms_median"] > 0
    result = CliRunner().invoke(cli, ["perf", "--model", "conv", "--dim", "15", "-b", "torch"])
    assert result.exit_code == 2
    assert "--model conv times a square one-channel image of --dim pixels: 15 is not a square" in result.output


def test_perf_pins_cpus_only_in_fresh_processes():
    result = CliRunner().invoke(perf_command, ["--cpus", "1", "--in-process"])
    assert result.exit_code == 2 and "--cpus pins the measuring processes: it needs --isolate" in result.output
