"""The kit's torch half: a loss called the way the train loop calls it (an ``nn.Module``, ``.backward()``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from benchbench.testing.reference import GaussianProblem, ScoreModel
from benchbench.testing.verdicts import Failure, check_deterministic, check_gradients, check_scalar

SCALAR = "a 0-d torch.Tensor"

# What a loss that fails under torch.func costs its user; the kit accepts it (see README, the conformance kit).
FUNC_LIMITATION = (
    "accepted: the train loop calls .backward() only; the loss cannot be used under torch.func transforms "
    "(torch.func.grad/vmap over models or seeds, functional_call-based per-example gradients)"
)


class Reference(torch.nn.Module):
    """A reference score model as an ``nn.Module``; ``sigma`` is accepted and ignored (noise-conditional losses)."""

    def __init__(self, model: ScoreModel) -> None:
        super().__init__()
        for name, value in model.params.items():
            self.register_parameter(name, torch.nn.Parameter(torch.as_tensor(value).clone()))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        s = -(x - self.b) @ self.A.T
        if "B" in self._parameters:
            s = s + torch.tanh(x @ self.B.T + self.c) @ self.C.T
        return s


class TorchDriver:
    name = "torch"

    def __init__(self, loss: Callable, problem: GaussianProblem, draws: int) -> None:
        self.loss, self.problem = loss, problem
        self.x = torch.as_tensor(problem.x)

    def _call(self, score_fn: Callable, hparams: Mapping[str, Any], seed: int) -> Any:
        # a fresh x each call: a loss may set requires_grad on it in place (as papers' code does)
        return self.loss(score_fn, self.x.clone(), torch.Generator().manual_seed(seed), **hparams)

    def _scalar(self, value: Any) -> float:
        return check_scalar(value, torch.Tensor, SCALAR, torch.float64)

    def basic(self, hparams: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
        """returns, determinism, gradients through .backward(), and torch.func: (check, status, measured,
        expected, message) rows; a broken rule raises :class:`Failure`."""
        model = Reference(self.problem.linear)
        value = self._call(model, hparams, 0)
        first = self._scalar(value)
        if not value.requires_grad:
            raise Failure(
                "returns", "returned a tensor that does not require grad; is it detached?", "requires_grad=False"
            )
        check_deterministic(first, float(self._call(model, hparams, 0).detach()))
        value.backward()
        backward = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
        check_gradients(backward, "loss.backward() on an nn.Module")
        rows = [
            ("returns", "pass", f"{first:.6g}", f"{SCALAR}, float64, finite", ""),
            ("determinism", "pass", "same value twice", "same value twice", ""),
            ("gradients", "pass", "finite, non-zero", "finite, non-zero", ""),
        ]
        params = {name: p.detach() for name, p in model.named_parameters()}
        try:
            functional = torch.func.grad(
                lambda p: self._call(lambda *args: torch.func.functional_call(model, p, args), hparams, 0)
            )(params)
        except Exception as error:  # noqa: BLE001 - any failure under torch.func is the finding
            detail = (str(error).strip().splitlines() or [""])[0][:120]
            rows.append(("torch.func", "warn", f"fails: {type(error).__name__}: {detail}", "runs", FUNC_LIMITATION))
            return rows
        for name, grad in functional.items():
            if not np.allclose(grad.numpy(), backward[name], rtol=1e-8, atol=1e-10):
                raise Failure(
                    "torch.func",
                    f"torch.func.grad(functional_call) and .backward() disagree on {name}",
                    "disagree",
                    "equal gradients",
                )
        rows.append(("torch.func", "pass", "grad equals .backward()", "grad equals .backward()", ""))
        return rows

    def value(self, model: ScoreModel, hparams: Mapping[str, Any], seed: int) -> float:
        return self._scalar(self._call(Reference(model), hparams, seed))

    def draws(
        self, model: ScoreModel, hparams: Mapping[str, Any], n: int, grads: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The loss at seeds 1..n, and with ``grads`` its gradient in the model's parameters, flat (n, P)."""
        module = Reference(model)
        values, gradients = np.empty(n), np.empty((n, model.size)) if grads else None
        for i in range(n):
            value = self._call(module, hparams, i + 1)
            values[i] = self._scalar(value)
            if grads:
                module.zero_grad(set_to_none=False)
                value.backward()
                gradients[i] = torch.cat([p.grad.reshape(-1) for p in module.parameters()]).numpy()
        return values, gradients
