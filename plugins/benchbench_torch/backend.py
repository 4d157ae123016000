"""The torch training program that the core's loop drives (:mod:`benchbench.training`), and the trained model."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchbench import Data, Objective, SkipTrial, TrialFailure, UsageError
from benchbench.noise import objective_ladder, objective_preconditioning
from benchbench_torch.autodiff import score_and_trace
from benchbench_torch.compiled import CompiledStep
from benchbench_torch.models import build_model

# Steps per run() call: the core checks the losses after each call, which copies them to the host.
_STEPS_PER_RUN = 50
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


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of ``size`` x ``size`` matmuls, the best of ``repeats`` (the ceiling, not the typical case)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _compile_refused(objective: Objective, model: str, error: Exception) -> str:
    """Why a combination runs eagerly but not compiled, e.g. an energy model's double backward (aot_autograd
    has none): a combination this backend cannot run, so the trial is skipped, never silently run eagerly."""
    detail = (str(error).strip().splitlines() or [""])[0][:160]
    return (
        f"--compile: torch.compile cannot compile objective {objective.name!r} with --model {model} "
        f"({type(error).__name__}: {detail}); it runs without --compile"
    )


# One intra-op thread unless --threads says otherwise: see README.md, "How benchbench times a step".
DEFAULT_THREADS = 1


def set_threads(requested: int | None) -> int:
    """Intra-op threads for this process: ``--threads``, else :data:`DEFAULT_THREADS`."""
    threads = requested or DEFAULT_THREADS
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


class TorchProgram:
    """Seeded init, fused Adam, one eager step per minibatch (or with ``--compile`` one compiled step, see
    :mod:`benchbench_torch.compiled`); the core's loop times it.

    The state is the number of steps done: the network, the optimiser and the generator belong to this object
    and are updated in place, as torch does. ``run`` keeps the losses on the device and copies them once a call.
    """

    max_steps_per_run = _STEPS_PER_RUN

    def __init__(self, trial: Any, data: Data, objective: Objective, hparams: Mapping[str, Any]) -> None:
        settings = trial.settings
        self.trial, self.settings, self.objective, self.dim, self.shape = (
            trial,
            settings,
            objective,
            data.dim,
            data.shape,
        )
        self.hparams = dict(hparams)
        self.threads = set_threads(settings.threads)
        self.torch_device = resolve_device(settings.device)
        self.dtype = torch.float64 if settings.dtype == "float64" else torch.float32
        self.sigmas = objective_ladder(objective, hparams, "torch")
        self.train_x = torch.as_tensor(data.train, device=self.torch_device, dtype=self.dtype)
        self.loss_fn = objective.loss_for("torch")
        cuda = self.torch_device.type == "cuda"
        self.device = torch.cuda.get_device_name(self.torch_device) if cuda else str(self.torch_device)
        self.tags = {"threads": str(self.threads)}

    def init(self) -> int:
        torch.manual_seed(self.trial.seed)
        self.generator = torch.Generator(device=self.torch_device).manual_seed(self.trial.seed)
        preconditioning = objective_preconditioning(self.objective, self.hparams)
        net = build_model(self.settings, self.dim, self.objective.noise_conditional, preconditioning, self.shape)
        self.net = net.to(device=self.torch_device, dtype=self.dtype)
        # fused Adam: one kernel for every parameter; measured 0.10 ms against 0.29 ms (foreach, the default)
        # and 0.17 ms (torch.compile'd step, after ~30 s of compiling) for the default MLP on this 2-core CPU.
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.settings.lr, fused=True)
        self.compiled_step = None
        if self.settings.compile:
            # Each trial's network is new and its step skips dynamo's guards: the caches of earlier trials in
            # this process must go (they would also count towards dynamo's recompile limit).
            torch.compiler.reset()
            self.compiled_step = CompiledStep(
                self.net,
                self._loss,
                self.train_x,
                self.settings.batch_size,
                self.settings.lr,
                self._scalar,
            )
            # The compiled step draws from torch's default generator: seeded as the eager step's generator is,
            # so that both draw the same numbers.
            torch.manual_seed(self.trial.seed)
        if self.torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.torch_device)
        return 0

    def _loss(self, net: torch.nn.Module, x: torch.Tensor, rng: torch.Generator | None) -> Any:
        return self.loss_fn(net, x, rng, **self.hparams)

    def _scalar(self, loss: Any) -> torch.Tensor:
        """The loss itself, or a TrialFailure naming the objective and what it returned instead."""
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise TrialFailure(
                f"objective {self.objective.name!r} (torch loss) returned {type(loss).__name__}"
                f"{'' if not isinstance(loss, torch.Tensor) else ' of shape ' + str(tuple(loss.shape))}, "
                "expected a scalar tensor"
            )
        return loss

    def _step(self) -> torch.Tensor:
        """One eager step: minibatch, loss, backward, fused Adam."""
        n = self.train_x.shape[0]
        index = torch.randint(0, n, (self.settings.batch_size,), generator=self.generator, device=self.torch_device)
        loss = self._scalar(self._loss(self.net, self.train_x[index], self.generator))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def run(self, state: int, n_steps: int) -> tuple[int, np.ndarray]:
        losses = []
        step = self.compiled_step or self._step
        if state == 0 and self.compiled_step is not None:
            try:
                losses.append(self.compiled_step())
            except TrialFailure:
                raise
            except Exception as error:
                self._step()  # a loss that fails eagerly too fails the trial with its own error
                raise SkipTrial(_compile_refused(self.objective, self.settings.model, error)) from error
        losses += [step() for _ in range(n_steps - len(losses))]
        return state + n_steps, torch.stack(losses).double().cpu().numpy()

    def sync(self, state: int) -> None:
        synchronize(self.torch_device)

    def to_model(self, state: int) -> TorchModel:
        return TorchModel(self.net, self.torch_device, self.dtype, self.sigmas, self.settings.width)

    def peak_memory(self) -> tuple[float, str]:
        return peak_memory(self.torch_device)

    def step_flops(self) -> float:
        """torch's own count (its FLOP formulas: matmuls and convolutions) of one step, which it takes."""
        with _FlopCount() as counter:
            self._step()
        return float(counter.total)

    def matmul_flops_per_s(self) -> float:
        return matmul_rate(self.torch_device, self.dtype)


class _FlopCount(TorchDispatchMode):
    """Sums torch's own FLOP formulas (``torch.utils.flop_counter.flop_registry``) over every operation a step
    dispatches, backward passes included. ``FlopCounterMode`` counts the same but also tracks modules with
    backward hooks, which ``autograd.grad`` refuses: it counted no step that takes a gradient inside the loss (the
    U-Net's sliced and Hutchinson steps, the exact loop reference)."""

    def __init__(self) -> None:
        from torch.utils.flop_counter import flop_registry  # not imported with torch: only `bench perf` counts

        super().__init__()
        self.formulas = flop_registry
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out
