"""The example third-party plugin ``plugins/benchbench-fdssm``: installed with pip like a user would, found only
through its entry point, and its maths (finite-difference sliced score matching, Pang et al. 2020) checked.

The plugin is pip-installed into a --target folder (no index, no build isolation), never into the shared
environment, so every other test sees the core without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import pip_install_copy

from benchbench.errors import ParameterError
from benchbench.params import resolve
from benchbench.plugins import Plugins
from benchbench.testing import ConformanceError, check_objective

SOURCE = Path(__file__).resolve().parent.parent / "plugins" / "benchbench-fdssm"


@pytest.fixture(scope="module")
def fdssm_site(tmp_path_factory) -> Path:
    """``pip install ./plugins/benchbench-fdssm`` into a target folder, built from a copy (pip builds in place)."""
    return pip_install_copy(tmp_path_factory, SOURCE)


@pytest.fixture
def installed(fdssm_site, monkeypatch):
    monkeypatch.syspath_prepend(str(fdssm_site))
    return fdssm_site


@pytest.fixture(scope="module")
def losses(fdssm_site):
    """The plugin's loss modules, imported from the installed copy."""
    sys.path.insert(0, str(fdssm_site))
    try:
        from benchbench_fdssm import jax_loss, torch_loss
    finally:
        sys.path.remove(str(fdssm_site))
    return torch_loss, jax_loss


def test_the_core_does_not_know_the_plugin():
    """In a fresh interpreter of the shared environment: not importable, not registered."""
    probe = (
        "import importlib.util; from benchbench.plugins import Plugins; plugins = Plugins(); "
        "print(importlib.util.find_spec('benchbench_fdssm') is None, 'fdssm' in plugins.plugins, "
        "'fd-sliced' in plugins.names('objective'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=_environment(), capture_output=True, text=True)
    assert result.stdout.split() == ["True", "False", "False"], result.stderr


def test_found_through_its_entry_point(installed):
    plugins = Plugins()
    info = plugins.plugins["fdssm"]
    assert (info.distribution, info.version, info.status) == ("benchbench-fdssm", "0.1.0", "ok")
    assert info.registered == {"objective": ["fd-sliced"]}
    objective = plugins.get("objective", "fd-sliced")
    assert sorted(objective.losses) == ["jax", "torch"] and not objective.biased
    assert {p.name: p.default for p in objective.params} == {"eps": 0.1, "variant": "ssm", "n_projections": 1}
    with pytest.raises(ParameterError, match=r"variant='ssd' is not valid; expected one of ssm, vr \(did you mean"):
        resolve("objective 'fd-sliced'", objective.params, {"variant": "ssd"})


def test_conforms_in_both_backends(installed):
    report = check_objective("fd-sliced")
    assert set(report.checked) == {"torch", "jax"}
    assert report.label == "objective 'fd-sliced' of plugin 'fdssm' (distribution benchbench-fdssm 0.1.0)"


@pytest.mark.parametrize("eps", [0.1, 0.01])
def test_the_kit_sees_the_vr_variant_s_bias_on_a_nonlinear_model(installed, eps):
    """vr's norm term 1/2||(s(x+v) + s(x-v))/2||^2 is s(x) + O(eps^2) with a spread of the same order, so the
    bias of its gradient (the module docstring's O(eps^2)) stands ~100 standard errors out at every eps."""
    with pytest.raises(ConformanceError, match=r"torch loss, check gradient\[nonlinear\]: the mean gradient"):
        check_objective("fd-sliced", ["torch"], hparams={"variant": "vr", "eps": eps})


def _unit_directions(m: int, n: int, d: int, seed: int) -> np.ndarray:
    u = np.random.default_rng(seed).standard_normal((m, n, d))
    return u / np.linalg.norm(u, axis=-1, keepdims=True)


def _mlp_weights(d: int, width: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((width, d)) / np.sqrt(d), rng.standard_normal(width), rng.standard_normal((d, width))]


def _torch_mlp(weights):
    import torch

    w1, b1, w2 = (torch.as_tensor(w) for w in weights)
    return lambda x: torch.tanh(x @ w1.T + b1) @ w2.T


@pytest.mark.parametrize("variant", ["ssm", "vr"])
def test_central_difference_is_sliced_score_matching_to_order_eps_squared(losses, variant):
    """Against the sliced integrand with the Jacobian-vector product from torch.func.jvp, same directions,
    on a nonlinear (tanh) network in float64: the error shrinks by ~4 when eps halves."""
    import torch

    torch_loss, _ = losses
    n, d = 64, 5
    score = _torch_mlp(_mlp_weights(d, 16, seed=1))
    x = torch.as_tensor(np.random.default_rng(2).standard_normal((n, d)))
    u = torch.as_tensor(_unit_directions(1, n, d, seed=3))
    w = u[0] * d**0.5  # E[ww'] = I
    s, jw = torch.func.jvp(score, (x,), (w,))
    norm = 0.5 * (w * s).sum(1) ** 2 if variant == "ssm" else 0.5 * s.pow(2).sum(1)
    exact = float((norm + (w * jw).sum(1)).mean())
    errors = [abs(float(torch_loss.fd_sliced_core(score, x, eps * u, eps, variant)) - exact) for eps in (0.1, 0.05)]
    assert errors[0] < 0.02 * abs(exact)
    assert 3.5 < errors[0] / errors[1] < 4.5


def test_torch_and_jax_compute_the_same_number(losses):
    import jax
    import jax.numpy as jnp
    import torch

    torch_loss, jax_loss = losses
    n, d, eps = 32, 4, 0.1
    weights = _mlp_weights(d, 8, seed=4)
    x = np.random.default_rng(5).standard_normal((n, d))
    v = eps * _unit_directions(2, n, d, seed=6)

    def jax_score(y):
        w1, b1, w2 = (jnp.asarray(w) for w in weights)
        return jnp.tanh(y @ w1.T + b1) @ w2.T

    for variant in ("ssm", "vr"):
        expected = float(
            torch_loss.fd_sliced_core(_torch_mlp(weights), torch.as_tensor(x), torch.as_tensor(v), eps, variant)
        )
        with jax.enable_x64(True):
            got = float(jax_loss.fd_sliced_core(jax_score, jnp.asarray(x), jnp.asarray(v), eps, variant))
        assert got == pytest.approx(expected, rel=1e-12)


def test_torch_training_needs_first_order_autodiff_only(losses):
    """A network whose backward cannot itself be differentiated trains with fd-sliced; the classic sliced
    loss (double backward) on the same network fails, which shows the network really forbids it."""
    import torch
    from torch.autograd.function import once_differentiable

    class Tanh(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            out = torch.tanh(z)
            ctx.save_for_backward(out)
            return out

        @staticmethod
        @once_differentiable
        def backward(ctx, grad):
            (out,) = ctx.saved_tensors
            return grad * (1 - out * out)

    torch_loss, _ = losses
    w1, b1, w2 = (torch.nn.Parameter(torch.as_tensor(w)) for w in _mlp_weights(3, 8, seed=7))

    def score(x):
        return Tanh.apply(x @ w1.T + b1) @ w2.T

    x = torch.as_tensor(np.random.default_rng(8).standard_normal((16, 3)))
    torch_loss.fd_sliced_loss(score, x, torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in (w1, b1, w2))

    x.requires_grad_(True)
    v = torch.randn(x.shape, dtype=x.dtype)
    (jtv,) = torch.autograd.grad((score(x) * v).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate twice"):
        (v * jtv).sum().backward()


def test_jax_training_needs_first_order_autodiff_only(losses):
    """A reverse-mode-only network (``jax.custom_vjp``) trains with fd-sliced; a jvp through it fails."""
    import jax
    import jax.numpy as jnp

    _, jax_loss = losses

    @jax.custom_vjp
    def tanh(z):
        return jnp.tanh(z)

    tanh.defvjp(lambda z: (jnp.tanh(z), jnp.tanh(z)), lambda out, g: (g * (1 - out * out),))
    w1, b1, w2 = (jnp.asarray(w, jnp.float32) for w in _mlp_weights(3, 8, seed=9))
    x = jnp.asarray(np.random.default_rng(10).standard_normal((16, 3)), jnp.float32)

    def loss(params, key):
        a, b, c = params
        return jax_loss.fd_sliced_loss(lambda y: tanh(y @ a.T + b) @ c.T, x, key)

    grads = jax.jit(jax.grad(loss))((w1, b1, w2), jax.random.key(0))
    assert all(bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0 for g in grads)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda y: tanh(y @ w1.T + b1) @ w2.T, (x,), (x,))


@pytest.mark.slow
def test_bench_lists_runs_and_tables_it_beside_the_built_ins(installed, tmp_path):
    env = {**_environment(), "PYTHONPATH": str(installed)}

    def bench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "benchbench", *args], env=env, cwd=tmp_path, capture_output=True, text=True
        )

    listed = {row["name"]: row for row in json.loads(bench("list", "plugins", "--json").stdout)}
    assert listed["fdssm"]["distribution"] == "benchbench-fdssm" and listed["fdssm"]["version"] == "0.1.0"
    assert listed["fdssm"]["registers"] == {"objective": ["fd-sliced"]} and listed["fdssm"]["status"] == "ok"
    objectives = {row["name"]: row for row in json.loads(bench("list", "objectives", "--json").stdout)}
    assert objectives["fd-sliced"]["backends"] == ["jax", "torch"] and objectives["fd-sliced"]["plugin"] == "fdssm"

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = ["--tracking-uri", uri, "--experiment", "fdssm"]
    run = bench(
        "run", "-o", "fd-sliced", "-o", "denoising", "-b", "torch", "-b", "jax",
        "-d", "gaussian:dim=3,n_train=2000,n_test=500", "--steps", "50", "--n-samples", "200", *store,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 trials: 4 finished" in run.stdout
    table = bench("table", *store)
    assert table.returncode == 0, table.stderr
    header, _, *rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.stdout.splitlines()
        if line.startswith("|")
    ]
    column = {name: i for i, name in enumerate(header)}
    shown = {(row[column["objective"]], row[column["backend"]], row[column["status"]]) for row in rows}
    assert shown == {(o, b, "ok") for o in ("fd-sliced", "denoising") for b in ("torch", "jax")}, table.stdout


@pytest.mark.slow
def test_the_plugin_s_own_tests_pass_with_the_kit_fixture(fdssm_site, tmp_path):
    """What the plugin's author runs: pytest on the package's tests, which use ``benchbench.testing``'s fixture."""
    tests = tmp_path / "tests"
    shutil.copytree(SOURCE / "tests", tests)
    env = {**_environment(), "PYTHONPATH": str(fdssm_site)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PYTHONPATH", None)
    return env
