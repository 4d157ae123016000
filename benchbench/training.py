"""The training loop every backend is timed by. The core runs it; a backend only supplies the program.

A backend turns a trial into a :class:`TrainingProgram` (the model, the optimiser, the data on the device, and a
step function it may compile and fuse) and the core drives it with one timing rule, so that torch, JAX and any
third-party backend are measured the same way (as benchopt's runner owns the timed region of every solver):

1. **Compile.** The first ``run(state, 1)``, bounded by ``sync``, is ``compile_s``: tracing, compilation and one
   step.
2. **Warm-up.** Short blocks of steps, each timed between two ``sync`` calls, until a block's time per step is no
   longer more than 10% below the block before it (at most :data:`WARMUP_BLOCKS` blocks, at most a quarter of the
   trial's steps). Warm-up steps train the model; their time is ``warmup_s``, not part of the step time. This is
   where a second compilation, allocator growth or a cold cache is paid, not in the timed steps.
3. **Timed steps.** Every later step, in calls of at most ``max_steps_per_run`` steps, with ``sync`` at both edges of
   each stretch between two checkpoints. ``train_step_ms`` = timed seconds / timed steps.
4. **Checkpoints.** Between stretches, outside any timed region, the model is evaluated (the runner decides how) and
   the point is recorded with the steps done and the training seconds spent (warm-up + timed, compile excluded).

The loss is checked after every ``run`` call: a non-finite value fails the trial at the step it appeared.
A time budget stops training once that many training seconds (warm-up + timed) are spent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from benchbench.errors import TrialFailure
from benchbench.specs import Checkpoint, TrainedModel, TrainResult

WARMUP_BLOCKS = 8
"""At most this many warm-up blocks; measured: two suffice for a JAX program compiled twice (committed inputs)."""
WARMUP_BLOCK_S = 0.02
"""Warm-up blocks after the first last about this long, so that a block's time is not noise (a CPU step: ~1 ms)."""
STEADY = 0.9
"""Warm-up ends when a block's time per step is at least this fraction of the block before it."""


class TrainingProgram(Protocol):
    """What a backend hands the core for one trial. The core calls nothing else.

    Must define:

    - ``init() -> state``: the initial parameters, optimiser state and random state, seeded from the trial.
    - ``run(state, n_steps) -> (state, losses)``: ``n_steps`` optimisation steps (``1 <= n_steps <=
      max_steps_per_run``), each on a fresh minibatch; ``losses`` are the ``n_steps`` training losses as a numpy
      array. A program may fuse the steps into one compiled call. It need not wait for the device.
    - ``sync(state)``: wait until every computation ``state`` depends on is done (``block_until_ready``,
      ``torch.cuda.synchronize``); the core calls it at both edges of every timed region.
    - ``to_model(state) -> TrainedModel``: the model at this state, seen from numpy, for metrics and samplers.
      The core uses it before the next ``run`` call and never after, so it may share buffers with ``state``.
    - ``peak_memory() -> (megabytes or None, how it was measured)``.
    - attributes ``device`` (what ran it, for the ``bench.device`` tag), ``max_steps_per_run`` and ``tags``
      (``{name: value}`` recorded on the trial's run, e.g. the thread count it used).

    May define, for ``bench perf``'s floor (the core never calls them while training):

    - ``step_flops() -> float``: floating-point operations of one training step, counted by the framework (it may
      take a step, so call it after training);
    - ``matmul_flops_per_s() -> float``: the rate of a large dense matmul in the program's framework, device,
      dtype and threads: the ceiling a step's arithmetic is measured against.
    """

    device: str
    max_steps_per_run: int
    tags: Mapping[str, str]

    def init(self) -> Any: ...

    def run(self, state: Any, n_steps: int) -> tuple[Any, np.ndarray]: ...

    def sync(self, state: Any) -> None: ...

    def to_model(self, state: Any) -> TrainedModel: ...

    def peak_memory(self) -> tuple[float | None, str]: ...


@dataclass(frozen=True)
class Budget:
    """When training stops: after ``steps`` steps, after ``seconds`` of training, or at whichever comes first."""

    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.steps is None and self.seconds is None:
            raise ValueError("a training budget needs steps, seconds or both")


def checkpoint_steps(every: int | None = None) -> Iterator[int]:
    """Steps after which the model is evaluated: every ``every`` steps, or by default a geometric schedule of
    about five points per decade (10, 15, 25, 40, 60, 100, 150, ...), dense early where curves move most."""
    if every:
        yield from (every * k for k in range(1, 2**62))
        return
    for decade in range(1, 20):
        for mantissa in (1.0, 1.5, 2.5, 4.0, 6.0):
            yield int(round(mantissa * 10**decade))


Evaluate = Callable[[TrainedModel, int, float], None]
"""``evaluate(model, steps done, training seconds)`` at a checkpoint, outside the timed region."""


class _Loop:
    """One trial's loop state: the program, the losses so far and the clock."""

    def __init__(self, program: TrainingProgram, budget: Budget, name: str, progress: Callable[[int], None]) -> None:
        self.program, self.budget, self.name, self.progress = program, budget, name, progress
        self.losses: list[np.ndarray] = []
        self.done = 0
        self.state: Any = None

    def steps_left(self) -> int | None:
        return None if self.budget.steps is None else self.budget.steps - self.done

    def run(self, n_steps: int) -> None:
        """``n_steps`` steps in calls the program accepts, each call's losses checked."""
        while n_steps > 0:
            n = min(n_steps, self.program.max_steps_per_run)
            self.state, losses = self.program.run(self.state, n)
            losses = np.asarray(losses, dtype=np.float64).reshape(-1)
            if losses.shape != (n,):
                raise TrialFailure(f"{self.name}: the training program returned {losses.size} losses for {n} steps")
            bad = np.flatnonzero(~np.isfinite(losses))
            if bad.size:
                raise TrialFailure(f"{self.name}: loss became {losses[bad[0]]} at step {self.done + bad[0]}")
            self.losses.append(losses)
            self.done += n
            n_steps -= n
            self.progress(self.done)

    def timed(self, n_steps: int) -> float:
        """Seconds for ``n_steps`` steps, synchronised at both edges."""
        self.program.sync(self.state)
        start = time.perf_counter()
        self.run(n_steps)
        self.program.sync(self.state)
        return time.perf_counter() - start


def train(
    program: TrainingProgram,
    budget: Budget,
    *,
    name: str = "trial",
    eval_every: int | None = None,
    evaluate: Evaluate | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Run ``program`` until ``budget`` is spent, by the rule in this module's docstring."""
    loop = _Loop(program, budget, name, progress or (lambda done: None))
    loop.state = program.init()
    compile_s = loop.timed(1)
    warm = _WarmUp(budget)
    schedule = checkpoint_steps(eval_every)
    next_checkpoint = next(schedule)
    checkpoints: list[Checkpoint] = []
    timed_steps, train_s, step_s = 0, 0.0, 0.0
    while not _spent(loop, warm.seconds + train_s):
        target = next_checkpoint - loop.done
        left = loop.steps_left()
        if left is not None:
            target = min(target, left)
        if warm.active:
            target = min(target, warm.block)
        elif budget.seconds is not None:
            # Stop close to the budget: calls sized by the step time measured so far, checked after each.
            remaining = budget.seconds - warm.seconds - train_s
            target = min(target, max(1, math.ceil(remaining / max(step_s, 1e-9))))
        elapsed = loop.timed(target)
        if warm.active:
            warm.record(target, elapsed, loop.program.max_steps_per_run)
        else:
            timed_steps, train_s = timed_steps + target, train_s + elapsed
            step_s = train_s / timed_steps
        if loop.done == next_checkpoint:
            next_checkpoint = next(schedule)
            if evaluate is not None and not _spent(loop, warm.seconds + train_s):
                checkpoints.append(Checkpoint(loop.done, warm.seconds + train_s))
                evaluate(program.to_model(loop.state), loop.done, warm.seconds + train_s)
    checkpoints.append(Checkpoint(loop.done, warm.seconds + train_s))
    memory_mb, memory_source = program.peak_memory()
    return TrainResult(
        model=program.to_model(loop.state),
        losses=np.concatenate(loop.losses),
        steps=loop.done,
        train_s=train_s,
        compile_s=compile_s,
        warmup_s=warm.seconds,
        warmup_steps=warm.steps,
        timed_steps=timed_steps,
        peak_memory_mb=memory_mb,
        memory_source=memory_source,
        device=program.device,
        tags=dict(program.tags),
        checkpoints=tuple(checkpoints),
    )


def _spent(loop: _Loop, train_time_s: float) -> bool:
    left = loop.steps_left()
    if left is not None and left <= 0:
        return True
    return loop.budget.seconds is not None and train_time_s >= loop.budget.seconds


class _WarmUp:
    """The warm-up phase: blocks of steps until the time per step stops falling (see the module docstring)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.steps, self.seconds, self.blocks = 0, 0.0, 0
        self.block, self.previous = 10 if budget.steps is None else max(1, min(10, budget.steps // 4)), math.inf
        self.active = not self._over()

    def _over(self) -> bool:
        if self.blocks >= WARMUP_BLOCKS:
            return True
        if self.budget.steps is not None and self.steps >= self.budget.steps // 4:
            return True
        return self.budget.seconds is not None and self.seconds >= self.budget.seconds / 4

    def record(self, steps: int, seconds: float, max_steps_per_run: int) -> None:
        self.steps, self.seconds, self.blocks = self.steps + steps, self.seconds + seconds, self.blocks + 1
        per_step = seconds / steps
        steady = per_step >= STEADY * self.previous
        self.previous = per_step
        self.block = max(1, min(4 * max_steps_per_run, round(WARMUP_BLOCK_S / max(per_step, 1e-9))))
        if self.budget.steps is not None:
            self.block = min(self.block, max(1, self.budget.steps // 4 - self.steps))
        self.active = not (steady or self._over())


def fit(
    program: TrainingProgram,
    trial: Any,
    *,
    evaluate: Evaluate | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train a trial's program for its settings' budget (steps, ``time_budget``, ``eval_every``)."""
    settings = trial.settings
    return train(
        program,
        Budget(settings.steps, settings.time_budget),
        name=trial.run_name,
        eval_every=settings.eval_every,
        evaluate=evaluate,
        progress=progress,
    )
