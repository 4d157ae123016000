"""What the kit reports: one row per objective x backend x check, and the failure that stops a backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

STATUSES = ("pass", "warn", "fail", "skip")
"""pass; warn: passes with a stated limitation; fail; skip: not applicable here, with the reason."""


class ConformanceError(AssertionError):
    """An objective broke the contract; the message names it, its plugin, the backend and the check."""


class Failure(Exception):
    """Raised inside a backend's checks: the check that failed, why, and what was measured and expected."""

    def __init__(self, check: str, message: str, measured: str = "", expected: str = "") -> None:
        super().__init__(message)
        self.check, self.message, self.measured, self.expected = check, message, measured, expected


@dataclass
class Row:
    """One check of one objective on one backend, as ``bench check`` prints it."""

    objective: str
    plugin: str
    backend: str
    check: str
    status: str
    measured: str = ""
    expected: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class BackendResult:
    """The expectation check on the linear model at the defaults: the loss's mean, its standard error, target."""

    backend: str
    mean: float
    stderr: float
    target: float
    draws: int


@dataclass
class ConformanceReport:
    """Every row, what passed (with its measured expectation), what could not be checked here and why, and
    the kit's own wall time per backend."""

    label: str
    rows: list[Row] = field(default_factory=list)
    checked: dict[str, BackendResult] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[Row]:
        return [row for row in self.rows if row.status == "fail"]


def mean_and_stderr(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over draws (axis 0) and its standard error; 0 when every draw is the same."""
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(len(samples))


def within(mean: Any, stderr: Any, target: Any, z: float, rtol: float) -> np.ndarray:
    """|mean - target| <= z stderr, plus a rounding allowance for deterministic (zero-variance) estimates."""
    return np.abs(mean - target) <= z * stderr + rtol * np.maximum(1.0, np.abs(target))


def fmt(value: float, stderr: float | None = None) -> str:
    return f"{value:.6g}" + ("" if stderr is None else f" +- {stderr:.2g}")


def describe(value: Any) -> str:
    kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
    shape = getattr(value, "shape", None)
    return kind + ("" if shape is None else f" of shape {tuple(shape)}")


def check_scalar(value: Any, array_type: type, want: str, dtype: Any) -> float:
    """A finite 0-d array of the backend's own type in x's dtype, as a float; else a ``returns`` failure."""
    if not isinstance(value, array_type) or value.shape != ():
        raise Failure("returns", f"returned {describe(value)}, expected {want}", describe(value), want)
    if value.dtype != dtype:
        raise Failure(
            "returns", f"returned {value.dtype} for {dtype} input; compute in x's dtype", str(value.dtype), str(dtype)
        )
    number = float(value.detach() if hasattr(value, "detach") else value)
    if not np.isfinite(number):
        raise Failure("returns", f"returned {number} on a Gaussian batch with a linear score model", str(number))
    return number


def check_gradients(grads: dict[str, np.ndarray], how: str) -> None:
    for name, grad in grads.items():
        if not np.all(np.isfinite(grad)):
            raise Failure("gradients", f"the gradient w.r.t. {name} is not finite ({how})", "not finite", "finite")
    if not any(np.any(grad != 0) for grad in grads.values()):
        raise Failure(
            "gradients",
            f"the gradient w.r.t. the model parameters is all zero ({how}); is it detached?",
            "all zero",
            "non-zero",
        )


def check_deterministic(first: float, again: float) -> None:
    """Called right after ``first``: a loss drawing from a global generator sees it advanced, so it differs."""
    if not first == again:
        raise Failure(
            "determinism",
            f"two calls with the same seed gave {first!r} and {again!r}; draw randomness only from the "
            "generator/key passed in",
            f"{first!r}, {again!r}",
            "equal",
        )
