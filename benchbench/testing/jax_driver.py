"""The kit's JAX half: a loss called the way the train step calls it (``jax.grad`` under ``jax.jit``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchbench.testing.reference import GaussianProblem, ScoreModel
from benchbench.testing.verdicts import Failure, check_deterministic, check_gradients, check_scalar, describe

SCALAR = "a 0-d jax.Array"


def reference_score(params: Mapping[str, jax.Array], x: jax.Array) -> jax.Array:
    s = -(x - params["b"]) @ params["A"].T
    if "B" in params:
        s = s + jnp.tanh(x @ params["B"].T + params["c"]) @ params["C"].T
    return s


# XLA's CPU back end at optimisation level 0 compiles the kit's small programs in about half the time (measured
# 1.0 s against 2.0-2.5 s for the sliced loss under vmap(value_and_grad), load ~5), and they run in ~0.2 s anyway.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


class JaxDriver:
    """One compiled ``jit(vmap(value_and_grad))`` per hyperparameter setting, shared by both reference models:
    the linear one runs as the nonlinear one with C = 0, so the kit compiles once per setting, not per check."""

    name = "jax"

    def __init__(self, loss: Callable, problem: GaussianProblem, draws: int) -> None:
        self.loss, self.problem, self.n = loss, problem, draws
        self._compiled: dict[tuple, Callable] = {}

    def _value_fn(self, hparams: Mapping[str, Any]) -> Callable:
        x = jnp.asarray(self.problem.x)

        def value(params: Mapping[str, jax.Array], key: jax.Array) -> Any:
            return self.loss(lambda y, sigma=None: reference_score(params, y), x, key, **hparams)

        return value

    def _scalar(self, value: Any) -> float:
        return check_scalar(value, jax.Array, SCALAR, jnp.float64)

    def _params(self, model: ScoreModel) -> dict[str, jax.Array]:
        full = dict(self.problem.nonlinear.params)
        if "C" not in model.params:
            full["C"] = np.zeros_like(full["C"])
        full.update(model.params)
        return {name: jnp.asarray(value) for name, value in full.items()}

    def _keys(self) -> jax.Array:
        """Key 0 first (the seed the eager and sensitivity checks use), then n - 1 more."""
        return jnp.concatenate([jax.random.key(0)[None], jax.random.split(jax.random.key(1), self.n - 1)])

    def _run(self, model: ScoreModel, hparams: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        signature = tuple(sorted((k, repr(v)) for k, v in hparams.items()))
        params, keys = self._params(model), self._keys()
        if signature not in self._compiled:
            batched = jax.jit(jax.vmap(jax.value_and_grad(self._value_fn(hparams)), in_axes=(None, 0)))
            try:
                self._compiled[signature] = batched.lower(params, keys).compile(COMPILER_OPTIONS)
            except Exception as error:  # noqa: BLE001 - any failure under a transform is the finding
                raise Failure(
                    "jit",
                    f"fails under jax.jit(jax.vmap(jax.value_and_grad)) over keys: {type(error).__name__}: {error}",
                    "fails",
                    "runs",
                ) from error
        values, grads = self._compiled[signature](params, keys)
        values = np.asarray(values)
        if values.shape != (self.n,) or not np.all(np.isfinite(values)):
            raise Failure(
                "jit",
                f"under jax.vmap over {self.n} keys returned {describe(values)}, not {self.n} finite values",
                describe(values),
                f"{self.n} finite values",
            )
        return values, {k: np.asarray(g) for k, g in grads.items()}

    def basic(self, hparams: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
        """returns and determinism (eager), jit (equal to eager), gradients under jit: rows; a broken rule raises."""
        with jax.enable_x64(True):
            value, params, key = self._value_fn(hparams), self._params(self.problem.linear), jax.random.key(0)
            first = self._scalar(value(params, key))
            check_deterministic(first, self._scalar(value(params, key)))
            values, grads = self._run(self.problem.linear, hparams)
        if not np.isclose(values[0], first, rtol=1e-10, atol=1e-12):
            raise Failure(
                "jit",
                f"gives {values[0]!r} under jax.jit but {first!r} eagerly; is there randomness not drawn from the "
                "key, or Python-side state?",
                f"{values[0]:.10g}",
                f"{first:.10g}",
            )
        check_gradients({k: grads[k][0] for k in self.problem.linear.params}, "jax.grad under jax.jit")
        return [
            ("returns", "pass", f"{first:.6g}", f"{SCALAR}, float64, finite", ""),
            ("determinism", "pass", "same value twice", "same value twice", ""),
            ("jit", "pass", "equals eager", "equals eager", ""),
            ("gradients", "pass", "finite, non-zero", "finite, non-zero", ""),
        ]

    def value(self, model: ScoreModel, hparams: Mapping[str, Any], seed: int) -> float:
        """The loss at one key, eagerly: a one-off value is cheaper op by op than through a new compile."""
        with jax.enable_x64(True):
            return self._scalar(self._value_fn(hparams)(self._params(model), jax.random.key(seed)))

    def draws(
        self, model: ScoreModel, hparams: Mapping[str, Any], n: int, grads: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The loss at the n keys and with ``grads`` its gradients in ``model``'s parameters, flat (n, P)."""
        assert n == self.n
        with jax.enable_x64(True):
            values, gradients = self._run(model, hparams)
        if not grads:
            return values, None
        return values, np.concatenate([gradients[k].reshape(n, -1) for k in model.params], axis=1)
