"""The conformance kit: what every objective must satisfy, checked the way a trial would hit it.

A plugin author runs it with pytest::

    from benchbench.testing import check_objective

    def test_my_objective_conforms():
        check_objective("my-sm")  # by name (installed plugins), or pass the Objective itself

or through the fixture, which reports a failure as one line instead of the kit's traceback::

    pytest_plugins = ["benchbench.testing"]

    def test_my_objective_conforms(objective_conformance):
        objective_conformance("my-sm")

For each backend the objective implements (torch and jax are driven by the kit; a backend that is not installed,
or that the kit cannot drive, is reported in ``ConformanceReport.unchecked``, not failed):

1. declaration: every Param default validates, and the loss accepts every declared hyperparameter by name;
2. the loss returns a finite 0-d tensor of its own backend (``torch.Tensor`` / ``jax.Array``) in x's dtype;
3. gradients w.r.t. the model parameters are finite and not all zero: torch through ``.backward()`` on an
   ``nn.Module`` (what the train loop does) and through ``torch.func.grad`` of ``torch.func.functional_call``,
   which must agree; jax through ``jax.grad`` under ``jax.jit``;
4. jax: the loss runs under ``jax.jit`` (equal to the eager value) and under ``jax.vmap`` over keys;
5. on x ~ N(mu, Sigma) and the linear score model s(x) = -A(x - b), the mean of the loss over the objective's
   own randomness is within ``z`` standard errors of J + bias, where J = E[1/2 ||s||^2 + tr(ds/dx)] =
   1/2 tr(A Sigma A') + 1/2 ||A(mu - b)||^2 - tr(A) (:func:`exact_objective`) and bias is 0 unless the objective
   declares ``biased=True`` and gives ``expected_bias(hparams, A, b, mu, Sigma)``. The batch x is fixed and J
   is taken at its empirical moments, which is exactly the batch mean of 1/2 ||s||^2 + tr(ds/dx): conditioning
   on the batch removes the data's sampling noise, so the tolerance measures only the objective's randomness;
6. determinism: the same seed gives the same loss twice in a row (a loss drawing from a global generator does not).

Everything runs in float64 on a small problem (d = 3), a few seconds per backend on a CPU.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from benchbench.errors import BenchError
from benchbench.params import resolve
from benchbench.plugins import Plugins
from benchbench.specs import Objective, missing_modules, resolve_ref

BiasFn = Callable[[Mapping[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]

DRIVEN = {"torch": ("torch",), "jax": ("jax",)}
"""The backends the kit can drive, with the modules each needs."""


class ConformanceError(AssertionError):
    """An objective broke the contract; the message names it, the backend and what it did."""


def exact_objective(A: np.ndarray, b: np.ndarray, mu: np.ndarray, Sigma: np.ndarray) -> float:
    """J = E[1/2 ||s||^2 + tr(ds/dx)] for s(x) = -A(x - b), x ~ (mu, Sigma): only the first two moments matter."""
    return float(0.5 * np.trace(A @ Sigma @ A.T) + 0.5 * np.sum((A @ (mu - b)) ** 2) - np.trace(A))


@dataclass(frozen=True)
class GaussianProblem:
    """A fixed batch ``x`` from N(mu, Sigma) and the linear score model s(x) = -A(x - b) it is scored with."""

    x: np.ndarray
    A: np.ndarray
    b: np.ndarray

    @property
    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The batch's mean and (biased, 1/n) covariance: J at these moments is J's batch mean exactly."""
        centred = self.x - self.x.mean(axis=0)
        return self.x.mean(axis=0), centred.T @ centred / len(self.x)


def gaussian_problem(dim: int = 3, n: int = 1024, seed: int = 0) -> GaussianProblem:
    """A well-conditioned, non-symmetric A, b away from the mean, and a correlated Gaussian: J is O(1)."""
    rng = np.random.default_rng(seed)
    root = np.eye(dim) + 0.3 * rng.standard_normal((dim, dim))
    x = rng.standard_normal((n, dim)) @ root.T + rng.standard_normal(dim)
    A = np.eye(dim) + 0.2 * rng.standard_normal((dim, dim))
    return GaussianProblem(x=x, A=A, b=rng.standard_normal(dim))


@dataclass
class BackendResult:
    """What the statistical check measured on one backend: the loss's mean, its standard error and the target."""

    backend: str
    mean: float
    stderr: float
    target: float
    draws: int


@dataclass
class ConformanceReport:
    """What passed (with its measured expectation) and what could not be checked here, with the reason."""

    label: str
    checked: dict[str, BackendResult] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)


def check_objective(
    objective: Objective | str,
    backends: Sequence[str] | None = None,
    *,
    hparams: Mapping[str, Any] | None = None,
    expected_bias: BiasFn | str | None = None,
    plugins: Plugins | None = None,
    draws: int = 100,
    z: float = 5.0,
    problem: GaussianProblem | None = None,
) -> ConformanceReport:
    """Check ``objective`` (an Objective, or a registered name) on ``backends`` (default: every one it implements).

    ``hparams`` override declared defaults (validated as the CLI would); ``expected_bias`` is E[loss] - J for a
    ``biased`` objective (a callable or ``"module:attribute"``; an ``expected_bias`` attribute on the objective
    is used when none is given). Raises :class:`ConformanceError` on the first broken rule, and when no backend
    could be checked at all; returns what was measured and what was not checked, with the reason.
    """
    plugins = plugins or (Plugins() if isinstance(objective, str) else None)
    if isinstance(objective, str):
        objective = plugins.get("objective", objective)
    label = _label(objective, plugins)
    values = _check_declaration(objective, hparams or {}, label)
    bias_fn = _bias_function(objective, expected_bias, label)
    problem = problem or gaussian_problem()
    mu, Sigma = problem.moments
    j = exact_objective(problem.A, problem.b, mu, Sigma)
    target = j + (float(bias_fn(values, problem.A, problem.b, mu, Sigma)) if bias_fn else 0.0)
    report = ConformanceReport(label)
    for backend in backends if backends is not None else sorted(objective.losses):
        if backend not in objective.losses:
            raise ConformanceError(
                f"{label}: has no {backend} loss (it implements {', '.join(sorted(objective.losses))})"
            )
        if backend not in DRIVEN:
            report.unchecked[backend] = f"the kit drives {' and '.join(DRIVEN)} only"
            continue
        missing = missing_modules(DRIVEN[backend])
        if missing:
            report.unchecked[backend] = f"unavailable (not installed: {', '.join(missing)})"
            continue
        where = f"{label}, {backend} loss"
        try:
            loss = objective.loss_for(backend)
        except BenchError as error:
            raise ConformanceError(f"{where}: {error}") from error
        _check_signature(loss, values, where)
        samples = (_torch_draws if backend == "torch" else _jax_draws)(loss, values, problem, draws, where)
        result = BackendResult(
            backend, float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(draws)), target, draws
        )
        if not abs(result.mean - target) <= z * result.stderr + 1e-8 * max(1.0, abs(target)):
            raise ConformanceError(f"{where}: {_expectation_problem(result, target, j if bias_fn else None)}")
        report.checked[backend] = result
    if not report.checked:
        reasons = "; ".join(f"{b}: {why}" for b, why in report.unchecked.items())
        raise ConformanceError(f"{label}: no backend could be checked ({reasons})")
    return report


def registered_cases(plugin: str | None = None, plugins: Plugins | None = None) -> list[tuple[str, str]]:
    """(objective, backend) pairs of every registered objective (of ``plugin`` only, if given), to parametrize on."""
    plugins = plugins or Plugins()
    return [
        (objective.name, backend)
        for objective, info in plugins.items("objective")
        if plugin is None or info.name == plugin
        for backend in sorted(objective.losses)
    ]


@pytest.fixture
def objective_conformance() -> Callable[..., ConformanceReport]:
    """:func:`check_objective`, failing the test with the kit's one-line message (no kit traceback)."""

    def check(objective: Objective | str, *args: Any, **options: Any) -> ConformanceReport:
        try:
            return check_objective(objective, *args, **options)
        except ConformanceError as error:
            pytest.fail(str(error), pytrace=False)

    return check


# -- declaration ----------------------------------------------------------------------------------------------


def _label(objective: Objective, plugins: Plugins | None) -> str:
    registered = plugins is not None and plugins.registries["objective"].get(objective.name, (None,))[0] is objective
    return f"objective {objective.name!r}" + (
        f" of {plugins.owner('objective', objective.name).label}" if registered else ""
    )


def _check_declaration(objective: Objective, hparams: Mapping[str, Any], label: str) -> dict[str, Any]:
    for param in objective.params:
        try:
            param.convert(param.default, label)
        except (BenchError, ValueError) as error:
            raise ConformanceError(
                f"{label}: declared default {param.name}={param.default!r} does not validate: {error}"
            ) from None
    return resolve(label, objective.params, hparams)


def _check_signature(loss: Callable, values: Mapping[str, Any], where: str) -> None:
    """Every declared hyperparameter is accepted by name, and nothing undeclared is required."""
    try:
        parameters = list(inspect.signature(loss).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable without a signature: the calls below still check it
        return
    by_keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        named = {p.name for p in parameters[3:] if p.kind in by_keyword}
        for name in values:
            if name not in named:
                raise ConformanceError(f"{where}: declares parameter {name!r} but the loss does not accept it")
    for p in parameters[3:]:
        if p.default is p.empty and p.kind in by_keyword and p.name not in values:
            raise ConformanceError(f"{where}: the loss requires {p.name!r}, which the objective does not declare")


def _bias_function(objective: Objective, given: BiasFn | str | None, label: str) -> Callable | None:
    ref = given if given is not None else getattr(objective, "expected_bias", None)
    if ref is None:
        if objective.biased:
            raise ConformanceError(
                f"{label}: declares biased=True but gives no expected_bias(hparams, A, b, mu, Sigma) = E[loss] - J "
                "for the linear score model s(x) = -A(x - b); pass expected_bias= to check_objective"
            )
        return None
    return resolve_ref(ref, f"{label} expected_bias")


def _expectation_problem(result: BackendResult, target: float, j: float | None) -> str:
    measured = f"on a Gaussian with a linear score model its expectation is {result.mean:.6g} +- {result.stderr:.2g}"
    if j is None:
        return f"{measured}, expected J = {target:.6g}; if it is biased, declare biased=True and its expected_bias"
    return f"{measured}, expected J + bias = {target:.6g} (J = {j:.6g}); is the declared expected_bias right?"


# -- what a loss returned ---------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
    shape = getattr(value, "shape", None)
    return kind + ("" if shape is None else f" of shape {tuple(shape)}")


def _checked_scalar(value: Any, array_type: type, want: str, dtype: Any, where: str) -> float:
    if not isinstance(value, array_type) or value.shape != ():
        raise ConformanceError(f"{where}: returned {_describe(value)}, expected {want}")
    if value.dtype != dtype:
        raise ConformanceError(f"{where}: returned {value.dtype} for {dtype} input; compute in x's dtype")
    number = float(value.detach() if hasattr(value, "detach") else value)
    if not np.isfinite(number):
        raise ConformanceError(f"{where}: returned {number} on a Gaussian batch with a linear score model")
    return number


def _check_gradients(grads: Mapping[str, np.ndarray], where: str, how: str) -> None:
    for name, grad in grads.items():
        if not np.all(np.isfinite(grad)):
            raise ConformanceError(f"{where}: the gradient w.r.t. {name} is not finite ({how})")
    if not any(np.any(grad != 0) for grad in grads.values()):
        raise ConformanceError(
            f"{where}: the gradient w.r.t. the model parameters is all zero ({how}); is it detached?"
        )


def _check_deterministic(first: float, again: float, where: str) -> None:
    """Called right after ``first``: a loss drawing from a global generator sees it advanced, so it differs."""
    if not first == again:
        raise ConformanceError(
            f"{where}: two calls with the same seed gave {first!r} and {again!r}; draw randomness only from the "
            "generator/key passed in"
        )


# -- torch ------------------------------------------------------------------------------------------------------


def _torch_draws(loss: Callable, hparams: Mapping[str, Any], problem: GaussianProblem, draws: int, where: str):
    import torch

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.A = torch.nn.Parameter(torch.as_tensor(problem.A))
            self.b = torch.nn.Parameter(torch.as_tensor(problem.b))

        def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
            return -(x - self.b) @ self.A.T

    model, x = Linear(), torch.as_tensor(problem.x)

    def call(score_fn: Callable, seed: int) -> Any:
        return loss(score_fn, x, torch.Generator().manual_seed(seed), **hparams)

    value = call(model, 0)
    first = _checked_scalar(value, torch.Tensor, "a 0-d torch.Tensor", torch.float64, where)
    if not value.requires_grad:
        raise ConformanceError(f"{where}: returned a tensor that does not require grad; is it detached?")
    _check_deterministic(first, float(call(model, 0).detach()), where)
    value.backward()
    backward = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
    _check_gradients(backward, where, "loss.backward() on an nn.Module")
    params = {name: p.detach() for name, p in model.named_parameters()}
    try:
        functional = torch.func.grad(lambda p: call(lambda *args: torch.func.functional_call(model, p, args), 0))(
            params
        )
    except Exception as error:  # noqa: BLE001 - any failure under torch.func is the finding
        raise ConformanceError(
            f"{where}: fails under torch.func.grad(functional_call): {type(error).__name__}: {error}"
        ) from error
    for name, grad in functional.items():
        if not np.allclose(grad.numpy(), backward[name], rtol=1e-8, atol=1e-10):
            raise ConformanceError(f"{where}: torch.func.grad(functional_call) and .backward() disagree on {name}")
    samples = []
    for seed in range(1, draws + 1):
        samples.append(_checked_scalar(call(model, seed), torch.Tensor, "a 0-d torch.Tensor", torch.float64, where))
    return np.asarray(samples)


# -- jax --------------------------------------------------------------------------------------------------------


def _jax_draws(loss: Callable, hparams: Mapping[str, Any], problem: GaussianProblem, draws: int, where: str):
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        params = {"A": jnp.asarray(problem.A), "b": jnp.asarray(problem.b)}
        x = jnp.asarray(problem.x)

        def value(p: Mapping[str, jax.Array], key: jax.Array) -> Any:
            return loss(lambda y, sigma=None: -(y - p["b"]) @ p["A"].T, x, key, **hparams)

        def scalar(result: Any) -> float:
            return _checked_scalar(result, jax.Array, "a 0-d jax.Array", jnp.float64, where)

        first = scalar(value(params, jax.random.key(0)))
        _check_deterministic(first, scalar(value(params, jax.random.key(0))), where)
        try:
            jitted, grads = jax.jit(jax.value_and_grad(value))(params, jax.random.key(0))
            jitted = scalar(jitted)
        except Exception as error:  # noqa: BLE001 - any failure under a transform is the finding
            raise ConformanceError(f"{where}: fails under jax.jit: {type(error).__name__}: {error}") from error
        if not np.isclose(jitted, first, rtol=1e-10, atol=1e-12):
            raise ConformanceError(
                f"{where}: gives {jitted!r} under jax.jit but {first!r} eagerly; is there randomness not drawn "
                "from the key, or Python-side state?"
            )
        _check_gradients({k: np.asarray(g) for k, g in grads.items()}, where, "jax.grad under jax.jit")
        keys = jax.random.split(jax.random.key(1), draws)
        try:
            samples = np.asarray(jax.jit(jax.vmap(value, in_axes=(None, 0)))(params, keys))
        except Exception as error:  # noqa: BLE001
            raise ConformanceError(
                f"{where}: fails under jax.vmap over keys: {type(error).__name__}: {error}"
            ) from error
    if samples.shape != (draws,) or not np.all(np.isfinite(samples)):
        raise ConformanceError(
            f"{where}: under jax.vmap over {draws} keys returned {_describe(samples)}, not {draws} finite values"
        )
    return samples
