"""Throughput and cost metrics, from the timings the core's training loop measured (benchbench.training)."""

from __future__ import annotations

import numpy as np

from benchbench import EvalContext


def train_steps_per_s(ctx: EvalContext) -> float | None:
    """Timed steps only: the first step (compile) and the warm-up steps are reported apart."""
    result = ctx.result
    if not result.timed_steps or result.train_s <= 0:
        return None
    return result.timed_steps / result.train_s


def train_examples_per_s(ctx: EvalContext) -> float | None:
    steps_per_s = train_steps_per_s(ctx)
    return None if steps_per_s is None else steps_per_s * ctx.trial.settings.batch_size


def train_step_ms(ctx: EvalContext) -> float | None:
    steps_per_s = train_steps_per_s(ctx)
    return None if steps_per_s is None else 1000.0 / steps_per_s


def compile_s(ctx: EvalContext) -> float:
    return ctx.result.compile_s


def warmup_s(ctx: EvalContext) -> dict[str, float]:
    return {"value": ctx.result.warmup_s, "steps": ctx.result.warmup_steps}


def train_time_s(ctx: EvalContext) -> float:
    return ctx.result.warmup_s + ctx.result.train_s


def steps(ctx: EvalContext) -> int:
    return ctx.result.steps


def peak_memory_mb(ctx: EvalContext) -> float | None:
    return ctx.result.peak_memory_mb


def final_loss(ctx: EvalContext) -> float:
    losses = ctx.result.losses
    return float(np.mean(losses[-max(1, len(losses) // 20) :]))
