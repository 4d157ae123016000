"""The conformance kit: what every objective must satisfy, checked the way a trial would hit it.

From the command line, with no test file: ``bench check [OBJECTIVE ...]``. In a test::

    from benchbench.testing import check_objective

    def test_my_objective_conforms():
        check_objective("my-sm")  # by name (installed plugins), or pass the Objective itself

or through the fixture (only when pytest is installed; the module itself needs numpy only), which reports a
failure as one line instead of the kit's traceback::

    pytest_plugins = ["benchbench.testing"]

    def test_my_objective_conforms(objective_conformance):
        objective_conformance("my-sm")

For each backend the objective implements (torch and jax are driven by the kit; a backend that is not installed,
or that the kit cannot drive, is reported in ``ConformanceReport.unchecked``, not failed), in this order, the
first broken rule stopping that backend:

1. declaration: every Param default validates, the loss accepts every declared hyperparameter by name, and a
   ``biased`` objective names its ``expected_bias``;
2. returns: a finite 0-d tensor of its own backend (``torch.Tensor`` / ``jax.Array``) in x's dtype;
3. determinism: the same seed gives the same loss twice in a row (a loss drawing from a global generator does not);
4. gradients w.r.t. the model parameters are finite and not all zero: torch through ``.backward()`` on an
   ``nn.Module`` (what the train loop does); jax through ``jax.grad`` under ``jax.jit``, whose value must equal
   the eager one. torch.func: ``torch.func.grad`` of ``functional_call`` must agree with ``.backward()``; a loss
   that fails under torch.func (``torch.autograd.grad(..., create_graph=True)`` inside) is accepted with a
   ``warn`` row, since the train loop does not need it;
5. expectation and gradient, on a fixed Gaussian batch and two score models (:mod:`benchbench.testing.reference`):
   linear, s(x) = -A(x - b), and nonlinear, s(x) = -A(x - b) + C tanh(Bx + c), whose Jacobian varies with x.
   The mean over ``draws`` seeds of the loss must be within ``z`` standard errors of J + bias, and the mean of its
   gradient in the model's parameters within ``z`` standard errors of the gradient of J + bias, coordinate by
   coordinate, where J = batch mean of 1/2 ||s||^2 + tr(ds/dx) is computed exactly by the kit (closed forms,
   no autodiff of the backend under test) and bias is 0 unless the objective is ``biased`` and declares
   ``expected_bias(hparams, A, b, mu, Sigma)`` (linear model only: a biased objective skips the nonlinear rows).
   Conditioning on the batch removes the data's sampling noise: the tolerance measures the objective's own
   randomness only. When every draw is the same, the message says the loss ignores its key or generator;
6. sensitivity: with the same seed, on the nonlinear model, the loss changes when each declared hyperparameter
   moves to another valid value (every other choice; x2 or +1 for numbers), except ``Param(loss_independent=...)``;
7. the expectation check on the linear model again at a second valid value of each numeric hyperparameter.

Everything runs in float64 on a small problem (d = 3, n = 1024): seconds per backend on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from benchbench.plugins import Plugins
from benchbench.specs import Objective
from benchbench.testing.kit import DRIVEN, audit, second_values
from benchbench.testing.reference import BiasFn, GaussianProblem, exact_objective, gaussian_problem
from benchbench.testing.verdicts import BackendResult, ConformanceError, ConformanceReport, Row


def audit_objective(
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
    """Run the kit and return every row, failures included (what ``bench check`` prints); never raises for a
    broken objective. Arguments as :func:`check_objective`."""
    plugins = plugins or (Plugins() if isinstance(objective, str) else None)
    if isinstance(objective, str):
        objective = plugins.get("objective", objective)
    for backend in backends or ():
        if backend not in objective.losses:
            raise ConformanceError(
                f"objective {objective.name!r}: has no {backend} loss (it implements "
                f"{', '.join(sorted(objective.losses))})"
            )
    return audit(objective, backends, hparams or {}, expected_bias, plugins, draws, z, problem or gaussian_problem())


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
    ``biased`` objective (a callable or ``"module:function"``; the objective's own ``expected_bias`` when none
    is given). Raises :class:`ConformanceError` with the first failure's message (it names the objective, its
    plugin, the backend and the check), and when no backend could be checked at all; returns the report.
    """
    report = audit_objective(
        objective,
        backends,
        hparams=hparams,
        expected_bias=expected_bias,
        plugins=plugins,
        draws=draws,
        z=z,
        problem=problem,
    )
    if report.failures:
        raise ConformanceError(report.failures[0].message)
    if not report.checked:
        reasons = "; ".join(f"{b}: {why}" for b, why in report.unchecked.items())
        raise ConformanceError(f"{report.label}: no backend could be checked ({reasons})")
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


try:  # the fixture, for ``pytest_plugins = ["benchbench.testing"]``; the kit itself does not need pytest
    import pytest
except ImportError:  # pragma: no cover - exercised by a test that hides pytest
    pytest = None

if pytest is not None:

    @pytest.fixture
    def objective_conformance() -> Callable[..., ConformanceReport]:
        """:func:`check_objective`, failing the test with the kit's one-line message (no kit traceback)."""

        def check(objective: Objective | str, *args: Any, **options: Any) -> ConformanceReport:
            try:
                return check_objective(objective, *args, **options)
            except ConformanceError as error:
                pytest.fail(str(error), pytrace=False)

        return check


__all__ = [
    "DRIVEN",
    "BackendResult",
    "ConformanceError",
    "ConformanceReport",
    "GaussianProblem",
    "Row",
    "audit_objective",
    "check_objective",
    "exact_objective",
    "gaussian_problem",
    "registered_cases",
    "second_values",
]
