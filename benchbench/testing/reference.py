"""The kit's reference problems: a fixed Gaussian batch, a linear and a nonlinear score model, and their exact J.

J(theta) = batch mean of 1/2 ||s(x)||^2 + tr(ds/dx) on the fixed batch x, and its gradient in the model's
parameters, in closed form (float64 numpy), so the kit's reference never goes through the autodiff of the
backend under test. Numpy only: importable without torch, jax or pytest.

- linear: s(x) = -A(x - b). Its Jacobian -A is the same at every x, so a loss that takes the Jacobian at the
  wrong point (another example, the batch mean) is right on it; J has a closed form in the batch moments.
- nonlinear: s(x) = -A(x - b) + C tanh(Bx + c). Its Jacobian -A + C diag(1 - tanh^2(Bx + c)) B varies with x.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

BiasFn = Callable[[Mapping[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]
"""``expected_bias(hparams, A, b, mu, Sigma) -> E[loss] - J`` for the linear model s(x) = -A(x - b)."""


def exact_objective(A: np.ndarray, b: np.ndarray, mu: np.ndarray, Sigma: np.ndarray) -> float:
    """J = E[1/2 ||s||^2 + tr(ds/dx)] for s(x) = -A(x - b), x ~ (mu, Sigma): only the first two moments matter."""
    return float(0.5 * np.trace(A @ Sigma @ A.T) + 0.5 * np.sum((A @ (mu - b)) ** 2) - np.trace(A))


@dataclass(frozen=True)
class ScoreModel:
    """A reference score model: its name and its parameters (float64 arrays, in a fixed order)."""

    name: str
    params: Mapping[str, np.ndarray]

    @property
    def size(self) -> int:
        return sum(value.size for value in self.params.values())

    def coordinate(self, index: int) -> str:
        """The name of a flat parameter index, e.g. ``C[1,2]``, for messages."""
        for name, value in self.params.items():
            if index < value.size:
                where = np.unravel_index(index, value.shape)
                return f"{name}[{','.join(map(str, where))}]"
            index -= value.size
        raise IndexError(index)


@dataclass(frozen=True)
class GaussianProblem:
    """A fixed batch ``x`` from a correlated Gaussian and the two reference score models it is scored with."""

    x: np.ndarray
    linear: ScoreModel
    nonlinear: ScoreModel

    @property
    def A(self) -> np.ndarray:  # noqa: N802 - the maths' name
        return self.linear.params["A"]

    @property
    def b(self) -> np.ndarray:
        return self.linear.params["b"]

    @property
    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The batch's mean and (biased, 1/n) covariance: J at these moments is J's batch mean exactly."""
        centred = self.x - self.x.mean(axis=0)
        return self.x.mean(axis=0), centred.T @ centred / len(self.x)


def gaussian_problem(dim: int = 3, n: int = 1024, hidden: int = 4, seed: int = 0) -> GaussianProblem:
    """A well-conditioned, non-symmetric A, b away from the mean, a correlated Gaussian: J is O(1).

    The nonlinear part's weights are O(1), so tanh is used across its range (its Jacobian varies by O(1)
    across the batch) while J stays O(1).
    """
    rng = np.random.default_rng(seed)
    root = np.eye(dim) + 0.3 * rng.standard_normal((dim, dim))
    x = rng.standard_normal((n, dim)) @ root.T + rng.standard_normal(dim)
    A = np.eye(dim) + 0.2 * rng.standard_normal((dim, dim))
    b = rng.standard_normal(dim)
    nonlinear = {
        "A": A,
        "b": b,
        "B": rng.standard_normal((hidden, dim)),
        "c": 0.5 * rng.standard_normal(hidden),
        "C": 0.7 * rng.standard_normal((dim, hidden)),
    }
    return GaussianProblem(
        x=x, linear=ScoreModel("linear", {"A": A, "b": b}), nonlinear=ScoreModel("nonlinear", nonlinear)
    )


def score(params: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """s(x) of a reference model, (n, d)."""
    s = -(x - params["b"]) @ params["A"].T
    if "B" in params:
        s = s + np.tanh(x @ params["B"].T + params["c"]) @ params["C"].T
    return s


def objective_and_gradient(model: ScoreModel, x: np.ndarray) -> tuple[float, np.ndarray]:
    """J on the batch and dJ/dtheta flattened in ``model.params`` order, by hand (checked against autodiff).

    With r = s / n: the norm term's gradient is -r'(x - b) for A, A' sum(r) for b, and through
    u = Bx + c, t = tanh u, g = 1 - t^2: r't for C, (rC * g)'x for B. The trace term is
    -tr(A) + mean_i sum_k g_ik D_k with D_k = (BC)_kk: -I for A, gbar_k C_jk for B_kj, B_kj gbar_k for C_jk,
    and through g (dg/du = -2 t g) q = -2 t g D / n, q'x for B, sum(q) for c.
    """
    p, n = model.params, len(x)
    A, b = p["A"], p["b"]
    s = score(p, x)
    r = s / n
    value = 0.5 * np.sum(s**2) / n - np.trace(A)
    grads = {"A": -r.T @ (x - b) - np.eye(len(A)), "b": A.T @ r.sum(axis=0)}
    if "B" in p:
        B, C = p["B"], p["C"]
        t = np.tanh(x @ B.T + p["c"])
        g = 1 - t**2
        D = np.einsum("kj,jk->k", B, C)
        value += float(np.mean(g @ D))
        gbar = g.mean(axis=0)
        through_norm = (r @ C) * g
        q = -2 * t * g * D / n
        grads["B"] = through_norm.T @ x + gbar[:, None] * C.T + q.T @ x
        grads["c"] = through_norm.sum(axis=0) + q.sum(axis=0)
        grads["C"] = r.T @ t + B.T * gbar[None, :]
    return float(value), np.concatenate([grads[name].ravel() for name in p])


def bias_and_gradient(
    bias_fn: BiasFn, hparams: Mapping[str, Any], problem: GaussianProblem, step: float = 1e-6
) -> tuple[float, np.ndarray]:
    """The declared bias on the linear model and its gradient in (A, b) by central differences.

    The bias is a plain numpy closed form, not differentiable by any framework; a central difference in
    float64 with a 1e-6 step is accurate to ~1e-9 for the O(1) closed forms here, far inside the
    gradient check's tolerance.
    """
    mu, Sigma = problem.moments
    A, b = problem.A, problem.b
    flat = np.concatenate([A.ravel(), b])

    def at(vector: np.ndarray) -> float:
        return float(bias_fn(hparams, vector[: A.size].reshape(A.shape), vector[A.size :], mu, Sigma))

    eye = np.eye(flat.size) * step
    gradient = np.array([(at(flat + e) - at(flat - e)) / (2 * step) for e in eye])
    return at(flat), gradient
