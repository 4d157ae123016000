"""The core's training loop (benchbench.training): the timing rule, warm-up, checkpoints, budgets, loss checks.

The program here is a plain numpy gradient descent on 1/2 ||w||^2 that can be told to be slow on given calls or to
return a non-finite loss: the loop's decisions are then checked against what the program was told to do.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from benchbench.errors import TrialFailure
from benchbench.training import Budget, checkpoint_steps, train


class Descent:
    """Gradient descent on 1/2 ||w||^2; ``slow_calls`` {call number: seconds} sleeps that long in those calls."""

    device = "cpu"
    tags = {"threads": "1"}

    def __init__(self, step_s: float = 0.0, slow_calls=None, nan_at: int | None = None, per_run: int = 7) -> None:
        self.step_s, self.slow_calls, self.nan_at = step_s, dict(slow_calls or {}), nan_at
        self.max_steps_per_run = per_run
        self.calls: list[int] = []
        self.events: list[str] = []

    def init(self):
        return {"w": np.ones(3), "step": 0}

    def run(self, state, n_steps):
        assert 1 <= n_steps <= self.max_steps_per_run
        self.calls.append(n_steps)
        self.events.append("run")
        time.sleep(self.step_s * n_steps + self.slow_calls.get(len(self.calls), 0.0))
        w, losses = state["w"], []
        for i in range(n_steps):
            losses.append(np.nan if state["step"] + i == self.nan_at else 0.5 * float(w @ w))
            w = 0.9 * w
        return {"w": w, "step": state["step"] + n_steps}, np.array(losses)

    def sync(self, state):
        self.events.append("sync")

    def to_model(self, state):
        return state["step"]

    def peak_memory(self):
        return None, "none"


def test_every_step_is_counted_once_and_split_into_compile_warmup_and_timed():
    program = Descent()
    run = train(program, Budget(steps=200))
    assert run.steps == sum(program.calls) == 200 == len(run.losses)
    assert program.calls[0] == 1, "the first call is the compile step alone"
    assert 1 + run.warmup_steps + run.timed_steps == 200
    assert 0 < run.warmup_steps <= 200 // 4
    np.testing.assert_allclose(run.losses, 1.5 * 0.81 ** np.arange(200))


def test_each_timed_region_is_synchronised_at_both_edges():
    program = Descent()
    train(program, Budget(steps=60))
    events = "".join("r" if e == "run" else "s" for e in program.events)
    assert re.fullmatch(r"(sr+s)+", events), events


def test_a_slow_second_call_is_paid_in_warm_up_not_in_the_step_time():
    """What a second compilation looks like from the loop: the second call is slow, the rest are steady."""
    program = Descent(step_s=0.001, slow_calls={2: 0.3}, per_run=50)
    run = train(program, Budget(steps=400))
    assert run.warmup_s > 0.3
    assert run.step_ms < 5, f"the slow call leaked into the timed steps: {run.step_ms:.2f} ms a step"
    assert run.warmup_steps >= 10


def test_checkpoints_follow_the_schedule_outside_the_timed_region():
    seen = []
    program = Descent(step_s=0.0005)

    def evaluate(model, step, seconds):
        seen.append((model, step, seconds))
        time.sleep(0.05)  # evaluation time must not count as training time

    run = train(program, Budget(steps=300), evaluate=evaluate)
    assert [step for _, step, _ in seen] == [10, 15, 25, 40, 60, 100, 150, 250]
    assert all(model == step for model, step, _ in seen), "evaluated at the state of that step"
    seconds = [s for _, _, s in seen]
    assert seconds == sorted(seconds) and run.train_time_s < 0.05 * len(seen)
    assert run.checkpoints[-1].step == 300 and run.checkpoints[-1].train_time_s == pytest.approx(run.train_time_s)


def test_eval_every_gives_a_linear_schedule():
    steps = []
    train(Descent(), Budget(steps=100), eval_every=30, evaluate=lambda m, step, s: steps.append(step))
    assert steps == [30, 60, 90]
    assert list(zip(range(6), checkpoint_steps()))[-1] == (5, 100)


def test_a_time_budget_stops_training_near_it():
    program = Descent(step_s=0.002, per_run=50)
    run = train(program, Budget(seconds=0.5))
    assert 0.5 <= run.train_time_s < 0.5 + 0.1
    assert run.steps == len(run.losses) and 100 < run.steps < 300


def test_steps_cap_a_time_budget():
    run = train(Descent(), Budget(steps=50, seconds=60))
    assert run.steps == 50


@pytest.mark.parametrize("nan_at", [0, 1, 37, 199])
def test_a_non_finite_loss_fails_the_trial_at_its_step(nan_at):
    with pytest.raises(TrialFailure, match=rf"^demo: loss became nan at step {nan_at}$"):
        train(Descent(nan_at=nan_at), Budget(steps=200), name="demo")


def test_a_program_returning_the_wrong_number_of_losses_is_named():
    class Short(Descent):
        def run(self, state, n_steps):
            state, losses = super().run(state, n_steps)
            return state, losses[:-1]

    with pytest.raises(TrialFailure, match="demo: the training program returned 0 losses for 1 steps"):
        train(Short(), Budget(steps=10), name="demo")


def test_one_step_has_no_timed_steps():
    run = train(Descent(), Budget(steps=1))
    assert run.steps == 1 and run.timed_steps == 0 and run.step_ms is None
