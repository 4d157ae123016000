"""The torch train loop: one trial from numpy data to a :class:`TrainResult`."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from benchbench.errors import TrialFailure, UsageError
from benchbench.specs import Data, Objective, TrainResult
from benchbench_torch.models import build_model

# Check for a non-finite loss every this many steps: each check synchronises the device.
_CHECK_EVERY = 50


def resolve_device(requested: str) -> torch.device:
    if requested in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {requested}: torch sees no CUDA device on this machine")
        return torch.device("cuda")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TorchModel:
    """A trained torch score network seen from numpy."""

    backend = "torch"
    noise_conditional = False
    sigmas = None

    def __init__(self, net: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        self.net, self.device, self.dtype = net.eval(), device, dtype

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), device=self.device, dtype=self.dtype)

    def score(self, x: np.ndarray, sigma: float | None = None, chunk: int = 4096) -> np.ndarray:
        with torch.no_grad():
            parts = [self.net(self._tensor(x[i : i + chunk])) for i in range(0, len(x), chunk)]
        return torch.cat(parts).double().cpu().numpy()

    def score_and_trace(self, x: np.ndarray, sigma: float | None = None, chunk: int = 256):
        jacobian = torch.func.vmap(torch.func.jacrev(lambda v: self.net(v.unsqueeze(0)).squeeze(0)))
        scores, traces = [], []
        with torch.no_grad():
            for i in range(0, len(x), chunk):
                batch = self._tensor(x[i : i + chunk])
                scores.append(self.net(batch))
                traces.append(torch.diagonal(jacobian(batch), dim1=1, dim2=2).sum(dim=1))
        return torch.cat(scores).double().cpu().numpy(), torch.cat(traces).double().cpu().numpy()


def peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    return kib * scale, "process peak RSS (ru_maxrss, includes everything the process loaded)"


def train(
    trial: Any,
    data: Data,
    objective: Objective,
    hparams: Mapping[str, Any],
    progress: Callable[[int], None],
) -> TrainResult:
    settings = trial.settings
    device = resolve_device(settings.device)
    dtype = torch.float64 if settings.dtype == "float64" else torch.float32
    torch.manual_seed(trial.seed)
    generator = torch.Generator(device=device).manual_seed(trial.seed)
    train_x = torch.as_tensor(data.train, device=device, dtype=dtype)
    net = build_model(settings, data.dim).to(device=device, dtype=dtype)
    loss_fn = objective.loss_for("torch")
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> torch.Tensor:
        index = torch.randint(0, train_x.shape[0], (settings.batch_size,), generator=generator, device=device)
        loss = loss_fn(net, train_x[index], generator, **hparams)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise TrialFailure(
                f"objective {objective.name!r} (torch loss) returned {type(loss).__name__}"
                f"{'' if not isinstance(loss, torch.Tensor) else ' of shape ' + str(tuple(loss.shape))}, "
                "expected a scalar tensor"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    losses = torch.empty(settings.steps, device=device, dtype=dtype)
    start = time.perf_counter()
    losses[0] = step()
    synchronize(device)
    compile_s = time.perf_counter() - start
    progress(1)
    start = time.perf_counter()
    for i in range(1, settings.steps):
        losses[i] = step()
        if (i + 1) % _CHECK_EVERY == 0 or i + 1 == settings.steps:
            window = losses[max(0, i + 1 - _CHECK_EVERY) : i + 1]
            if not bool(torch.isfinite(window).all()):
                bad = int(torch.nonzero(~torch.isfinite(losses[: i + 1]))[0])
                raise TrialFailure(f"{trial.run_name}: loss became {float(losses[bad])} at step {bad}")
            progress(i + 1)
    synchronize(device)
    train_s = time.perf_counter() - start
    memory_mb, memory_source = peak_memory(device)
    return TrainResult(
        model=TorchModel(net, device, dtype),
        losses=losses.double().cpu().numpy(),
        steps=settings.steps,
        train_s=train_s,
        compile_s=compile_s,
        peak_memory_mb=memory_mb,
        memory_source=memory_source,
        device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
    )
