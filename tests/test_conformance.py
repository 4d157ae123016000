"""The conformance kit (``benchbench.testing``): every registered objective passes it, and it catches broken ones.

The broken objectives below each break one rule; the kit must name the objective and what it returned. The train
loops' own checks of what a loss returns (the wrong backend's tensor, a vector) are verified through real trials.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from benchbench.errors import SkipTrial, TrialFailure
from benchbench.params import Param, resolve
from benchbench.plugins import Plugins, get_plugins
from benchbench.runner import run_trial
from benchbench.specs import Objective, resolve_ref
from benchbench.testing import (
    DRIVEN,
    ConformanceError,
    check_objective,
    exact_objective,
    gaussian_problem,
    registered_cases,
    second_values,
)
from benchbench.testing.reference import objective_and_gradient
from benchbench.trial import Settings, build_trials

pytest_plugins = ["pytester"]

PLUGINS = Plugins()


def denoising_bias(hparams, A, b, mu, Sigma) -> float:
    """E 1/2||s(x + sigma z) + z/sigma||^2 = J + d/(2 sigma^2) + sigma^2/2 ||A||_F^2 for s(x) = -A(x - b)."""
    sigma = hparams["sigma"]
    return A.shape[0] / (2 * sigma**2) + sigma**2 / 2 * np.sum(A**2)


def multiscale_bias(hparams, A, b, mu, Sigma) -> float:
    """With lambda = sigma^2 (preconditioning=ncsn) and sigma uniform on the ladder: E = m2 J + d/2 + m4/2 ||A||_F^2
    (m_k = mean sigma^k)."""
    ladder = np.geomspace(hparams["sigma_max"], hparams["sigma_min"], hparams["n_sigmas"])
    m2, m4 = np.mean(ladder**2), np.mean(ladder**4)
    return (m2 - 1) * exact_objective(A, b, mu, Sigma) + A.shape[0] / 2 + m4 / 2 * np.sum(A**2)


def test_declared_biases_are_the_independent_closed_forms():
    """The objectives' own expected_bias (benchbench_objectives.bias) against the formulas written out above."""
    problem = gaussian_problem()
    mu, Sigma = problem.moments
    cases = [
        ("denoising", {"sigma": 0.3}, denoising_bias),
        (
            "denoising-multiscale",
            {"sigma_min": 0.1, "sigma_max": 2.0, "n_sigmas": 4, "preconditioning": "ncsn"},
            multiscale_bias,
        ),
    ]
    for name, given, formula in cases:
        objective = PLUGINS.get("objective", name)
        hparams = resolve(name, objective.params, given)
        declared = resolve_ref(objective.expected_bias, name)(hparams, problem.A, problem.b, mu, Sigma)
        assert declared == pytest.approx(formula(hparams, problem.A, problem.b, mu, Sigma), rel=1e-12)


@pytest.mark.parametrize("name, backend", registered_cases(plugins=PLUGINS))
def test_registered_objective_conforms(name, backend):
    """Every built-in objective with the bias it declares (``Objective.expected_bias``)."""
    report = check_objective(PLUGINS.get("objective", name), [backend], plugins=PLUGINS)
    assert list(report.checked) == [backend] and report.label.startswith(f"objective {name!r} of plugin ")
    assert {row.status for row in report.rows} <= {"pass", "skip"}  # the built-ins also run under torch.func


def test_exact_objective_closed_form():
    """Against Monte Carlo at the true moments, and exactly at the empirical ones (what the kit relies on)."""
    rng = np.random.default_rng(3)
    mu, root, A, b = (
        rng.standard_normal(4),
        rng.standard_normal((4, 4)),
        rng.standard_normal((4, 4)),
        rng.standard_normal(4),
    )
    x = mu + rng.standard_normal((400_000, 4)) @ root.T
    per_example = 0.5 * np.sum(((x - b) @ A.T) ** 2, axis=1) - np.trace(A)
    stderr = per_example.std() / np.sqrt(len(x))
    assert abs(exact_objective(A, b, mu, root @ root.T) - per_example.mean()) < 4 * stderr
    centred = x - x.mean(axis=0)
    assert exact_objective(A, b, x.mean(axis=0), centred.T @ centred / len(x)) == pytest.approx(
        per_example.mean(), rel=1e-10
    )


def test_biased_objective_needs_its_bias_and_the_kit_detects_a_wrong_one():
    denoising = PLUGINS.get("objective", "denoising")
    with pytest.raises(ConformanceError, match="check declaration: declares biased=True but gives no expected_bias"):
        check_objective(dataclasses.replace(denoising, expected_bias=None), ["torch"])
    # the loss's standard error here is ~0.4 (sigma = 0.1 makes z/sigma large), so a bias 5 too high is ~12 of them
    with pytest.raises(
        ConformanceError, match=r"expectation\[linear\]: .*expectation is .* expected J \+ bias = .*expected_bias right"
    ):
        check_objective(denoising, ["torch"], expected_bias=lambda h, A, b, mu, S: denoising_bias(h, A, b, mu, S) + 5)


# -- broken objectives, one rule each -------------------------------------------------------------------------


def _sliced(score_fn, x, generator, trace_factor=1.0):
    import torch

    v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    s, jv = torch.func.jvp(score_fn, (x,), (v,))
    return (0.5 * (v * s).sum(1) ** 2 + trace_factor * (v * jv).sum(1)).mean()


def torch_vector(score_fn, x, generator):
    return 0.5 * score_fn(x).pow(2).sum(dim=1)


def torch_nan(score_fn, x, generator):
    return _sliced(score_fn, x, generator) * float("nan")


def torch_numpy(score_fn, x, generator):
    return _sliced(score_fn, x, generator).detach().numpy()


def torch_jax(score_fn, x, generator):
    import jax.numpy as jnp

    return jnp.asarray(float(_sliced(score_fn, x, generator).detach()))


def torch_float32(score_fn, x, generator):
    return _sliced(score_fn, x.float(), generator).float()


def torch_detached(score_fn, x, generator):
    return _sliced(score_fn, x, generator).detach()


def torch_global_rng(score_fn, x, generator):
    import torch

    v = torch.randn(x.shape, dtype=x.dtype)
    s, jv = torch.func.jvp(score_fn, (x,), (v,))
    return (0.5 * (v * s).sum(1) ** 2 + (v * jv).sum(1)).mean()


def torch_module_only(score_fn, x, generator):
    """Assumes score_fn is an nn.Module; under torch.func.functional_call it is a plain function."""
    return _sliced(score_fn, x.to(next(score_fn.parameters()).device), generator)


def torch_biased(score_fn, x, generator):
    return _sliced(score_fn, x, generator, trace_factor=1.2)


def jax_float(score_fn, x, key):
    return float((0.5 * score_fn(x) ** 2).sum(axis=1).mean())


def jax_torch(score_fn, x, key):
    import torch

    return torch.tensor(np.asarray((0.5 * score_fn(x) ** 2).sum(axis=1).mean()))


def jax_unjittable(score_fn, x, key):
    loss = (0.5 * score_fn(x) ** 2).sum(axis=1).mean()
    return loss if float(loss) < 1e9 else loss * 0


def jax_global_rng(score_fn, x, key):
    import jax.numpy as jnp

    v = jnp.asarray(np.random.standard_normal(x.shape))
    return jnp.mean(0.5 * jnp.sum(v * score_fn(x), axis=1) ** 2)


BROKEN = [
    ("torch", torch_vector, r"returns: returned torch\.Tensor of shape \(1024,\), expected a 0-d torch\.Tensor"),
    ("torch", torch_nan, r"returns: returned nan on a Gaussian batch"),
    ("torch", torch_numpy, r"returns: returned numpy\.ndarray of shape \(\), expected a 0-d torch\.Tensor"),
    ("torch", torch_jax, r"returns: returned jaxlib\.\w+ of shape \(\), expected a 0-d torch\.Tensor"),
    ("torch", torch_float32, r"returns: returned torch\.float32 for torch\.float64 input"),
    ("torch", torch_detached, r"returns: returned a tensor that does not require grad; is it detached"),
    ("torch", torch_global_rng, r"determinism: two calls with the same seed gave"),
    (
        "torch",
        torch_biased,
        r"expectation\[linear\]: on a Gaussian with the linear score model its expectation is .* \+- .*, "
        r"expected J = .*; if it is biased",
    ),
    ("jax", jax_float, r"returns: returned builtins\.float, expected a 0-d jax\.Array"),
    ("jax", jax_torch, r"returns: returned torch\.Tensor of shape \(\), expected a 0-d jax\.Array"),
    (
        "jax",
        jax_unjittable,
        r"jit: fails under jax\.jit\(jax\.vmap\(jax\.value_and_grad\)\) over keys: .*Concretization",
    ),
    ("jax", jax_global_rng, r"determinism: two calls with the same seed gave"),
]


@pytest.mark.parametrize("backend, loss, message", BROKEN, ids=[loss.__name__ for _, loss, _ in BROKEN])
def test_kit_names_the_objective_and_what_it_returned(backend, loss, message):
    objective = Objective(name=f"broken-{loss.__name__}", description="", losses={backend: loss})
    with pytest.raises(
        ConformanceError, match=rf"^objective 'broken-{loss.__name__}', {backend} loss, check {message}"
    ):
        check_objective(objective)


def test_a_correct_objective_written_here_passes():
    """The control for the broken ones above: the same sliced loss, unbroken, passes on torch."""
    report = check_objective(Objective("plain-sliced", "", losses={"torch": _sliced}))
    assert report.checked["torch"].stderr > 0 and report.checked["torch"].draws == 100


def torch_papers_hutchinson(score_fn, x, generator):
    """Hutchinson as most papers' code writes it: torch.autograd.grad(..., create_graph=True) on x."""
    import torch

    x = x.requires_grad_(True)
    s = score_fn(x)
    v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    (jtv,) = torch.autograd.grad((s * v).sum(), x, create_graph=True)
    return (0.5 * s.pow(2).sum(dim=1) + (v * jtv).sum(dim=1)).mean()


@pytest.mark.parametrize("loss", [torch_papers_hutchinson, torch_module_only])
def test_a_loss_that_fails_under_torch_func_is_accepted_with_a_warning(loss):
    """The decision in README's conformance-kit paragraph: the train loop calls .backward() only."""
    report = check_objective(Objective(loss.__name__, "", losses={"torch": loss}))
    [row] = [row for row in report.rows if row.check == "torch.func"]
    assert row.status == "warn" and row.measured.startswith("fails: ")
    assert f"objective '{loss.__name__}', torch loss, check torch.func: accepted: the train loop" in row.message
    assert report.failures == [] and {r.check for r in report.rows if r.status == "pass"} >= {
        "gradient[linear]",
        "gradient[nonlinear]",
    }


def test_the_exact_objective_and_its_gradient_against_torch_autodiff():
    """The kit's closed forms on both reference models against torch's exact Jacobian trace and .backward()."""
    import torch

    problem = gaussian_problem()
    for model in (problem.linear, problem.nonlinear):
        params = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}

        def score(y, p=params):
            out = -(y - p["b"]) @ p["A"].T
            return out + torch.tanh(y @ p["B"].T + p["c"]) @ p["C"].T if "B" in p else out

        x = torch.as_tensor(problem.x)
        jacobian = torch.func.vmap(torch.func.jacrev(lambda xi: score(xi[None])[0]))(x)
        j = (0.5 * score(x).pow(2).sum(dim=1) + jacobian.diagonal(dim1=1, dim2=2).sum(dim=1)).mean()
        j.backward()
        value, gradient = objective_and_gradient(model, problem.x)
        assert value == pytest.approx(float(j.detach()), rel=1e-12)
        assert np.allclose(gradient, torch.cat([params[k].grad.ravel() for k in model.params]).numpy(), atol=1e-12)
    mu, Sigma = problem.moments
    assert objective_and_gradient(problem.linear, problem.x)[0] == pytest.approx(
        exact_objective(problem.A, problem.b, mu, Sigma), rel=1e-12
    )


def test_second_values_are_valid_and_differ():
    assert second_values(Param("n", 1, low=1)) == [2]  # 0 is out of range, 2 x 1 is 2 again
    assert second_values(Param("n", 10, low=1, high=10)) == [9]
    assert second_values(Param("sigma", 0.1, low=1e-6)) == [0.2, 0.05]
    assert second_values(Param("p", "gaussian", choices=("gaussian", "rademacher", "sphere"))) == [
        "rademacher",
        "sphere",
    ]
    assert second_values(Param("flag", True)) == [False] and second_values(Param("path", "x", type="path")) == []


def test_loss_independent_parameters_are_exempt_from_sensitivity():
    exact = PLUGINS.get("objective", "exact")
    assert {p.name for p in exact.params if p.loss_independent} == {"chunk", "method"}
    report = check_objective(exact, ["torch"], plugins=PLUGINS)
    rows = {row.check: row for row in report.rows}
    assert rows["sensitivity[chunk]"].status == rows["sensitivity[method]"].status == "skip"
    assert rows["expectation[linear, chunk=1]"].status == "pass"  # the numeric one is still checked for its value


def test_the_kit_imports_without_pytest():
    """After the README's `.[all]` install pytest is absent: the kit works, only the fixture is missing."""
    probe = textwrap.dedent(
        """
        import sys
        class NoPytest:
            def find_spec(self, name, path=None, target=None):
                if name == "pytest" or name.startswith(("pytest.", "_pytest")):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, NoPytest())
        import benchbench.testing as kit
        from benchbench.testing import check_objective
        print(hasattr(kit, "objective_conformance"), "pytest" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_the_fixture_fails_a_plugin_authors_test_in_one_line(pytester):
    pytester.makepyfile(
        test_mine="""
        from benchbench.specs import Objective

        pytest_plugins = ["benchbench.testing"]

        def vector(score_fn, x, generator):
            return score_fn(x).sum(dim=1)

        def test_vector_conforms(objective_conformance):
            objective_conformance(Objective("vec", "", losses={"torch": vector}))
        """
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*objective 'vec', torch loss, check returns: returned torch.Tensor of shape (1024,), expected a 0-d*"]
    )
    assert "benchbench/testing" not in result.stdout.str()  # the kit's own traceback is left out


def test_declaration_rules():
    good = {"torch": _sliced}
    bad_default = Objective("bad-default", "", losses=good, params=(Param("trace_factor", -1.0, low=0.0),))
    with pytest.raises(
        ConformanceError, match=r"declared default trace_factor=-1\.0 does not validate: .*out of range"
    ):
        check_objective(bad_default)
    not_accepted = Objective("not-accepted", "", losses=good, params=(Param("sigma", 0.1),))
    with pytest.raises(ConformanceError, match="declares parameter 'sigma' but the loss does not accept it"):
        check_objective(not_accepted)
    undeclared = Objective("undeclared", "", losses={"torch": lambda score_fn, x, generator, scale: scale})
    with pytest.raises(ConformanceError, match="the loss requires 'scale', which the objective does not declare"):
        check_objective(undeclared)
    with pytest.raises(ConformanceError, match="has no jax loss"):
        check_objective(Objective("torch-only", "", losses=good), ["jax"])


def test_backends_the_kit_cannot_run_are_listed_not_failed(monkeypatch):
    objective = Objective("two-and-one", "", losses={"torch": _sliced, "mxnet": "nowhere:loss", "jax": "nowhere:l"})
    monkeypatch.setitem(DRIVEN, "jax", ("no_such_module_for_jax",))
    report = check_objective(objective)
    assert set(report.checked) == {"torch"}
    assert report.unchecked == {
        "mxnet": "the kit drives torch and jax only",
        "jax": "unavailable (not installed: no_such_module_for_jax)",
    }
    with pytest.raises(ConformanceError, match=r"no backend could be checked \(mxnet: the kit drives"):
        check_objective(objective, ["mxnet"])


PLUGIN_WITH_MISSING_BACKEND = """
from benchbench import hookimpl
from benchbench.specs import Backend, Objective

@hookimpl
def register_backends(register):
    register(Backend("mxnet", "a framework that is not installed", "mxnet_backend:train", requires=("mxnet_xyz",)))

@hookimpl
def register_objectives(register):
    register(Objective("mx-sm", "declares a backend nobody registered", losses={"mxnet": "mx_sm:loss", "cntk": "x:y"}))
"""


def test_a_plugin_declaring_a_backend_that_is_not_installed_is_listed_not_broken(tmp_path, monkeypatch):
    (tmp_path / "h7_missing_backend.py").write_text(PLUGIN_WITH_MISSING_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = Plugins(["h7_missing_backend"])
    assert plugins.errors == [] and plugins.plugins["h7_missing_backend"].status == "ok"
    assert plugins.get("backend", "mxnet").unavailable_reason() == "not installed: mxnet_xyz"
    objective = plugins.get("objective", "mx-sm")
    assert sorted(objective.losses) == ["cntk", "mxnet"]
    with pytest.raises(SkipTrial, match=r"has no torch implementation \(it implements: cntk, mxnet\)"):
        objective.loss_for("torch")  # what `bench run -o mx-sm` does on the installed backends: skipped, with why


WRONG_BACKEND_PLUGIN = """
import numpy as np
from benchbench import hookimpl
from benchbench.specs import Objective

def torch_gives_numpy(score_fn, x, generator):
    return (0.5 * score_fn(x).pow(2).sum(dim=1).mean()).detach().numpy()

def torch_gives_jax(score_fn, x, generator):
    import jax.numpy as jnp
    return jnp.asarray(float(0.5 * score_fn(x).pow(2).sum(dim=1).mean()))

def torch_gives_vector(score_fn, x, generator):
    return 0.5 * score_fn(x).pow(2).sum(dim=1)

def jax_gives_torch(score_fn, x, key):
    import torch
    return torch.tensor(1.0)

def jax_gives_numpy(score_fn, x, key):
    return np.float64(1.0)

def jax_gives_vector(score_fn, x, key):
    return 0.5 * (score_fn(x) ** 2).sum(axis=1)

@hookimpl
def register_objectives(register):
    for loss in (torch_gives_numpy, torch_gives_jax, torch_gives_vector):
        register(Objective(loss.__name__.replace("_", "-"), "", losses={"torch": loss}))
    for loss in (jax_gives_torch, jax_gives_numpy, jax_gives_vector):
        register(Objective(loss.__name__.replace("_", "-"), "", losses={"jax": loss}))
"""


@pytest.mark.parametrize(
    "objective, backend, returned",
    [
        ("torch-gives-numpy", "torch", "ndarray"),
        ("torch-gives-jax", "torch", "ArrayImpl"),
        ("torch-gives-vector", "torch", r"Tensor of shape \(64,\)"),
        ("jax-gives-torch", "jax", r"torch\.Tensor of shape \(\)"),
        ("jax-gives-numpy", "jax", r"numpy\.float64 of shape \(\)"),
        ("jax-gives-vector", "jax", r"a jax array of shape \(64,\)"),
    ],
)
def test_train_loops_fail_the_trial_naming_the_objective(tmp_path_factory, monkeypatch, objective, backend, returned):
    folder = tmp_path_factory.getbasetemp() / "wrong_backend_plugin"
    folder.mkdir(exist_ok=True)
    (folder / "h7_wrong_backend.py").write_text(textwrap.dedent(WRONG_BACKEND_PLUGIN))
    monkeypatch.syspath_prepend(str(folder))
    modules = ("h7_wrong_backend",)
    settings = Settings(steps=3, batch_size=64)
    [trial] = build_trials(
        get_plugins(modules), [objective], [backend], ["gaussian:n_train=200,n_test=50"], 1, settings
    )
    expected = rf"^objective '{objective}' \({backend} loss\) returned {returned}, expected a scalar"
    with pytest.raises(TrialFailure, match=expected):
        run_trial(trial, modules)
