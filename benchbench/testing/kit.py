"""The kit's checks in order, on one backend at a time, as rows; the first broken rule stops that backend."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from benchbench.errors import BenchError
from benchbench.params import Param, resolve
from benchbench.plugins import Plugins
from benchbench.specs import Objective, missing_modules, resolve_ref
from benchbench.testing.reference import (
    BiasFn,
    GaussianProblem,
    ScoreModel,
    bias_and_gradient,
    exact_objective,
    objective_and_gradient,
)
from benchbench.testing.verdicts import (
    BackendResult,
    ConformanceReport,
    Failure,
    Row,
    fmt,
    mean_and_stderr,
    within,
)

DRIVEN = {"torch": ("torch",), "jax": ("jax",)}
"""The backends the kit can drive, with the modules each needs."""

VALUE_RTOL = 1e-8  # rounding allowance of a deterministic estimate against J (float64 sums of 1024 terms)
GRADIENT_RTOL = 1e-7  # also covers the central difference of a declared bias (~1e-9)
SENSITIVE_RTOL = 1e-10  # a hyperparameter must move the loss by more than rounding


def identify(objective: Objective, plugins: Plugins | None) -> tuple[str, str]:
    """(label for messages, plugin name for rows): 'objective 'x' of plugin 'p' (distribution d v)'."""
    registry = plugins.registries["objective"] if plugins is not None else {}
    if registry.get(objective.name, (None,))[0] is objective:
        info = plugins.owner("objective", objective.name)
        return f"objective {objective.name!r} of {info.label}", info.name
    return f"objective {objective.name!r}", "(unregistered)"


def second_values(param: Param, current: Any = None) -> list[Any]:
    """Other valid values of a declared hyperparameter than ``current`` (default: its default); the first that the
    loss accepts is used.

    Numbers move by a factor 2 (or 1 for ints) inside their bounds; choices and booleans take every other value.
    A free string or path has no second value the kit could know.
    """
    kind, default = param.kind, param.default if current is None else current
    if param.choices:
        candidates: list[Any] = [c for c in param.choices if c != default]
    elif kind == "bool":
        candidates = [not default]
    elif kind == "int":
        candidates = [default + 1, default - 1, default * 2]
    elif kind == "float":
        candidates = [default * 2, default / 2, default + 1] if default else [1.0, 0.5]
    elif kind == "floats":
        candidates = [tuple(2 * v for v in default), tuple(v / 2 for v in default)]
    else:
        return []
    valid = []
    for value in candidates:
        try:
            value = param.convert(value, "")
        except (BenchError, ValueError):
            continue
        if value != default and value not in valid:
            valid.append(value)
    return valid if param.choices or kind == "bool" else valid[:2]


def check_declaration(objective: Objective, hparams: Mapping[str, Any], label: str) -> dict[str, Any]:
    for param in objective.params:
        try:
            param.convert(param.default, label)
        except (BenchError, ValueError) as error:
            raise Failure(
                "declaration", f"declared default {param.name}={param.default!r} does not validate: {error}"
            ) from None
    return resolve(label, objective.params, hparams)


def check_signature(loss: Callable, values: Mapping[str, Any]) -> None:
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
                raise Failure("declaration", f"declares parameter {name!r} but the loss does not accept it")
    for p in parameters[3:]:
        if p.default is p.empty and p.kind in by_keyword and p.name not in values:
            raise Failure("declaration", f"the loss requires {p.name!r}, which the objective does not declare")


def bias_function(objective: Objective, given: BiasFn | str | None, label: str) -> Callable | None:
    ref = given if given is not None else objective.expected_bias
    if ref is None:
        if objective.biased:
            raise Failure(
                "declaration",
                "declares biased=True but gives no expected_bias(hparams, A, b, mu, Sigma) = E[loss] - J for the "
                "linear score model s(x) = -A(x - b); declare Objective(expected_bias='module:function') or pass "
                "expected_bias= to check_objective",
            )
        return None
    try:
        return resolve_ref(ref, f"{label} expected_bias")
    except BenchError as error:
        raise Failure("declaration", str(error)) from None


class BackendRun:
    """The checks of one objective on one backend: yields (check, status, measured, expected, message)."""

    def __init__(
        self,
        objective: Objective,
        driver: Any,
        values: dict[str, Any],
        bias_fn: Callable | None,
        problem: GaussianProblem,
        draws: int,
        z: float,
    ) -> None:
        self.objective, self.driver, self.values, self.bias_fn = objective, driver, values, bias_fn
        self.problem, self.draws, self.z = problem, draws, z
        self.result: BackendResult | None = None

    def target(self, model: ScoreModel, hparams: Mapping[str, Any]) -> tuple[float, np.ndarray, str]:
        """J (+ declared bias) and its gradient, and how to say it."""
        j, grad = objective_and_gradient(model, self.problem.x)
        if self.bias_fn is None:
            return j, grad, f"J = {fmt(j)}"
        bias, bias_grad = bias_and_gradient(self.bias_fn, hparams, self.problem)
        return j + bias, grad + bias_grad, f"J + bias = {fmt(j + bias)} (J = {fmt(j)})"

    def run(self) -> Iterator[tuple[str, str, str, str, str]]:
        yield from self._guarded("returns", lambda: self.driver.basic(self.values))
        yield from self.statistics(self.problem.linear, self.values, "linear", grads=True)
        if self.bias_fn is not None:
            why = "biased objective: its declared bias is a closed form on the linear model only"
            yield ("expectation[nonlinear]", "skip", "", "", why)
            yield ("gradient[nonlinear]", "skip", "", "", why)
        else:
            yield from self.statistics(self.problem.nonlinear, self.values, "nonlinear", grads=True)
        for param in self.objective.params:
            yield from self.sensitivity(param)
        for param in self.objective.params:
            if param.kind in ("int", "float"):
                yield from self.second_expectation(param)

    def statistics(
        self, model: ScoreModel, hparams: Mapping[str, Any], where: str, grads: bool
    ) -> Iterator[tuple[str, str, str, str, str]]:
        check = f"expectation[{where}]"
        values, gradients = self._guarded(check, lambda: self.driver.draws(model, hparams, self.draws, grads))
        target, target_grad, said = self.target(model, hparams)
        mean, stderr = mean_and_stderr(values)
        if not within(mean, stderr, target, self.z, VALUE_RTOL):
            raise Failure(check, self._expectation_problem(values, mean, stderr, said, model), fmt(mean, stderr), said)
        if model is self.problem.linear and hparams is self.values:
            self.result = BackendResult(self.driver.name, float(mean), float(stderr), target, self.draws)
        yield (check, "pass", fmt(mean, stderr), said, "")
        if gradients is None:
            return
        check = f"gradient[{where}]"
        mean, stderr = mean_and_stderr(gradients)
        ok = within(mean, stderr, target_grad, self.z, GRADIENT_RTOL)
        among = np.flatnonzero(~ok) if not ok.all() else np.arange(ok.size)
        scaled = np.abs(mean - target_grad)[among] / np.maximum(stderr[among], 1e-300)
        worst = int(among[np.argmax(scaled)])
        name = model.coordinate(worst)
        measured = f"d/d{name}: {fmt(mean[worst], stderr[worst])}"
        expected = f"{fmt(target_grad[worst])} (gradient of {said.split(' = ')[0]})"
        if not ok.all():
            raise Failure(
                check,
                f"the mean gradient over {self.draws} draws is not the gradient of {said.split(' = ')[0]} on the "
                f"{model.name} score model: {int((~ok).sum())} of {ok.size} coordinates off by more than "
                f"{self.z:g} standard errors, worst {measured}, expected {fmt(target_grad[worst])}; is a term "
                "detached from the graph, or a backward written by hand?",
                measured,
                expected,
            )
        yield (check, "pass", measured, expected, "")

    def _expectation_problem(self, values: np.ndarray, mean: float, stderr: float, said: str, model: ScoreModel) -> str:
        if values.size > 1 and np.all(values == values[0]):
            return (
                f"all {values.size} draws gave the same value {fmt(values[0])}, expected {said}: the loss ignores "
                "its key or generator (is a fixed key or generator made inside the loss?)"
            )
        measured = f"on a Gaussian with the {model.name} score model its expectation is {fmt(mean, stderr)}"
        if self.bias_fn is not None:
            return f"{measured}, expected {said}; is the declared expected_bias right?"
        if model is self.problem.nonlinear:
            return (
                f"{measured}, expected {said}; it is right on the linear model, whose Jacobian is the same at "
                "every x: is the Jacobian taken at each example's own x?"
            )
        return f"{measured}, expected {said}; if it is biased, declare biased=True and its expected_bias"

    def _guarded(self, check: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Failure:
            raise
        except Exception as error:  # noqa: BLE001 - a loss may fail in any way; the row says how
            raise Failure(check, f"raised {type(error).__name__}: {error}", "raised", "runs") from error

    def sensitivity(self, param: Param) -> Iterator[tuple[str, str, str, str, str]]:
        check = f"sensitivity[{param.name}]"
        if param.loss_independent:
            yield (check, "skip", "", "", f"declared loss_independent: {param.loss_independent}")
            return
        model, base = self.problem.nonlinear, None
        current = self.values[param.name]
        for value in second_values(param, current):
            hparams = {**self.values, param.name: value}
            try:
                changed = self._guarded(
                    f"sensitivity[{param.name}={value}]", lambda h=hparams: self.driver.value(model, h, 0)
                )
            except Failure as failure:  # e.g. sigma_min above sigma_max: not a valid combination with the others
                if isinstance(failure.__cause__, BenchError):
                    continue
                raise
            base = base if base is not None else self._guarded(check, lambda: self.driver.value(model, self.values, 0))
            tag = f"sensitivity[{param.name}={value}]"
            said = f"!= {fmt(base)} at {param.name}={current!r}"
            if not abs(changed - base) > SENSITIVE_RTOL * max(1.0, abs(base)):
                raise Failure(
                    tag,
                    f"gives {changed!r} at {param.name}={value!r} and {base!r} at {param.name}={current!r} with "
                    f"the same seed: the loss ignores {param.name!r} (declare loss_independent='why' if its "
                    "value for a given model does not depend on it, e.g. a chunk size)",
                    fmt(changed),
                    said,
                )
            yield (tag, "pass", fmt(changed), said, "")
            if not (param.choices or param.kind == "bool"):
                break  # one other number is enough; every other choice is checked
        if base is None:
            yield (check, "skip", "", "", "no second valid value the kit can choose")

    def second_expectation(self, param: Param) -> Iterator[tuple[str, str, str, str, str]]:
        for value in second_values(param)[:1]:
            hparams = {**self.values, param.name: value}
            try:
                self._guarded(
                    f"expectation[linear, {param.name}={value}]",
                    lambda h=hparams: self.driver.value(self.problem.linear, h, 0),
                )
            except Failure as failure:
                if isinstance(failure.__cause__, BenchError):
                    continue
                raise
            try:
                for check, *rest in self.statistics(self.problem.linear, hparams, "linear", grads=False):
                    yield (f"{check[:-1]}, {param.name}={value}]", *rest)
            except Failure as failure:
                failure.check = f"{failure.check[:-1]}, {param.name}={value}]"
                failure.message = f"at {param.name}={value!r}: {failure.message}"
                raise


def run_backend(
    objective: Objective,
    backend: str,
    hparams: Mapping[str, Any],
    expected_bias: BiasFn | str | None,
    problem: GaussianProblem,
    draws: int,
    z: float,
    label: str,
    plugin: str,
    report: ConformanceReport,
) -> None:
    """Append this backend's rows to ``report`` (stopping at the first failure) and its wall time."""
    start = time.perf_counter()

    def row(check: str, status: str, measured: str = "", expected: str = "", message: str = "") -> None:
        report.rows.append(Row(objective.name, plugin, backend, check, status, measured, expected, message))

    try:
        values = check_declaration(objective, hparams, label)
        bias_fn = bias_function(objective, expected_bias, label)
        try:
            loss = objective.loss_for(backend)
        except BenchError as error:
            raise Failure("declaration", str(error)) from None
        check_signature(loss, values)
        row("declaration", "pass", f"{len(values)} hyperparameters", "defaults validate, accepted by name")
        if backend == "torch":
            from benchbench.testing.torch_driver import TorchDriver as Driver
        else:
            from benchbench.testing.jax_driver import JaxDriver as Driver
        run = BackendRun(objective, Driver(loss, problem, draws), values, bias_fn, problem, draws, z)
        for check, status, measured, expected, message in run.run():
            row(check, status, measured, expected, message and f"{label}, {backend} loss, check {check}: {message}")
        report.checked[backend] = run.result
    except Failure as failure:
        message = f"{label}, {backend} loss, check {failure.check}: {failure.message}"
        row(failure.check, "fail", failure.measured, failure.expected, message)
    report.seconds[backend] = time.perf_counter() - start


def audit(
    objective: Objective,
    backends: Sequence[str] | None,
    hparams: Mapping[str, Any],
    expected_bias: BiasFn | str | None,
    plugins: Plugins | None,
    draws: int,
    z: float,
    problem: GaussianProblem,
) -> ConformanceReport:
    label, plugin = identify(objective, plugins)
    report = ConformanceReport(label)
    for backend in backends if backends is not None else sorted(objective.losses):
        if backend not in DRIVEN:
            report.unchecked[backend] = f"the kit drives {' and '.join(DRIVEN)} only"
        elif missing := missing_modules(DRIVEN[backend]):
            report.unchecked[backend] = f"unavailable (not installed: {', '.join(missing)})"
        else:
            run_backend(objective, backend, hparams, expected_bias, problem, draws, z, label, plugin, report)
            continue
        report.rows.append(Row(objective.name, plugin, backend, "all", "skip", message=report.unchecked[backend]))
    return report


__all__ = ["DRIVEN", "audit", "exact_objective", "second_values"]
