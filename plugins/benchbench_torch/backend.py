"""The torch train loop: one trial from numpy data to a :class:`TrainResult`, and the trained model."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from benchbench.errors import SkipTrial, TrialFailure, UsageError
from benchbench.noise import objective_ladder
from benchbench.specs import Data, Objective, TrainResult
from benchbench_torch.autodiff import score_and_trace
from benchbench_torch.models import build_model

# Check for a non-finite loss every this many steps: each check synchronises the device.
_CHECK_EVERY = 50
# Evaluation (score_and_trace) works on this many examples at a time, and takes the trace over blocks
# of basis vectors so that one block's tangents, examples x block x width, stay under this many
# elements (2^24: 64 MiB in float32); a 784-d image model then evaluates in a few hundred MB.
_EVAL_EXAMPLES = 256
_TANGENT_ELEMENTS = 2**24


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
    """A trained torch score network seen from numpy (metrics) and from torch (samplers).

    Noise-conditional models take one sigma for a whole batch, or a tensor of one per example in
    :meth:`score_tensor`; given none, they are evaluated at the smallest sigma of the ladder, the
    level closest to the data.
    """

    backend = "torch"

    def __init__(
        self,
        net: torch.nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        sigmas: np.ndarray | None = None,
        width: int = 128,
    ) -> None:
        self.net, self.device, self.dtype = net.eval(), device, dtype
        self.sigmas = sigmas
        self.noise_conditional = sigmas is not None
        self.width = width

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), device=self.device, dtype=self.dtype)

    def _score_fn(self, n: int, sigma: float | torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
        if not self.noise_conditional:
            return self.net
        if sigma is None:
            sigma = float(self.sigmas[-1])
        sigma = torch.as_tensor(sigma, device=self.device, dtype=self.dtype).expand(n)
        return lambda x: self.net(x, sigma)

    def score_tensor(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of ``x`` (n, d) on the model's device; ``sigma`` a scalar or (n,) tensor."""
        with torch.no_grad():
            return self._score_fn(x.shape[0], sigma)(x.to(device=self.device, dtype=self.dtype))

    def score(self, x: np.ndarray, sigma: float | None = None, chunk: int = 4096) -> np.ndarray:
        parts = [self.score_tensor(self._tensor(x[i : i + chunk]), sigma) for i in range(0, len(x), chunk)]
        return torch.cat(parts).double().cpu().numpy()

    def score_and_trace(self, x: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n, d) and the exact tr(ds/dx) (n,), in blocks that bound memory (see _TANGENT_ELEMENTS)."""
        dim = x.shape[1]
        basis_chunk = max(1, _TANGENT_ELEMENTS // (_EVAL_EXAMPLES * max(dim, self.width)))
        scores, traces = [], []
        with torch.no_grad():
            for i in range(0, len(x), _EVAL_EXAMPLES):
                batch = self._tensor(x[i : i + _EVAL_EXAMPLES])
                s, trace = score_and_trace(self._score_fn(len(batch), sigma), batch, basis_chunk)
                scores.append(s)
                traces.append(trace)
        return torch.cat(scores).double().cpu().numpy(), torch.cat(traces).double().cpu().numpy()


def peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    return kib * scale, "process peak RSS (ru_maxrss, includes everything the process loaded)"


def _compile_refused(objective: Objective, model: str, error: Exception) -> str:
    """Why a combination runs eagerly but not compiled, e.g. an energy model's double backward (aot_autograd
    has none): a combination this backend cannot run, so the trial is skipped, never silently run eagerly."""
    detail = (str(error).strip().splitlines() or [""])[0][:160]
    return (
        f"--compile: torch.compile cannot compile objective {objective.name!r} with --model {model} "
        f"({type(error).__name__}: {detail}); it runs without --compile"
    )


def train(
    trial: Any,
    data: Data,
    objective: Objective,
    hparams: Mapping[str, Any],
    progress: Callable[[int], None],
) -> TrainResult:
    """Seeded init, Adam, ``settings.steps`` steps; the first step is timed apart as ``compile_s``."""
    settings = trial.settings
    device = resolve_device(settings.device)
    dtype = torch.float64 if settings.dtype == "float64" else torch.float32
    sigmas = objective_ladder(objective, hparams, "torch")
    torch.manual_seed(trial.seed)
    generator = torch.Generator(device=device).manual_seed(trial.seed)
    train_x = torch.as_tensor(data.train, device=device, dtype=dtype)
    net = build_model(settings, data.dim, objective.noise_conditional).to(device=device, dtype=dtype)
    loss_fn = objective.loss_for("torch")
    # fused Adam: one kernel for every parameter; measured 0.10 ms against 0.29 ms (foreach, the default)
    # and 0.17 ms (torch.compile'd step, after ~30 s of compiling) for the default MLP on this 2-core CPU.
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr, fused=True)

    def batch_loss(x: torch.Tensor) -> torch.Tensor:
        return loss_fn(net, x, generator, **hparams)

    # Compiling the loss, not the model, lets the compiler fuse the tangent propagation with the
    # loss's reductions; a loss's random draws (torch.Generator) are a graph break it runs eagerly.
    # Each trial's network is new, so the compile caches of earlier trials in this process only count
    # towards dynamo's recompile limit (8), past which it would silently run eagerly: start clean.
    if settings.compile:
        torch.compiler.reset()
    compute_loss = torch.compile(batch_loss) if settings.compile else batch_loss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step(compute: Callable[[torch.Tensor], Any]) -> torch.Tensor:
        index = torch.randint(0, train_x.shape[0], (settings.batch_size,), generator=generator, device=device)
        loss = compute(train_x[index])
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
    try:
        losses[0] = step(compute_loss)
    except Exception as error:
        if not settings.compile:
            raise
        step(batch_loss)  # a loss that fails eagerly too fails the trial with its own error
        raise SkipTrial(_compile_refused(objective, settings.model, error)) from error
    synchronize(device)
    compile_s = time.perf_counter() - start
    progress(1)
    start = time.perf_counter()
    for i in range(1, settings.steps):
        losses[i] = step(compute_loss)
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
        model=TorchModel(net, device, dtype, sigmas, settings.width),
        losses=losses.double().cpu().numpy(),
        steps=settings.steps,
        train_s=train_s,
        compile_s=compile_s,
        peak_memory_mb=memory_mb,
        memory_source=memory_source,
        device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
    )
