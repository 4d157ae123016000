"""Throughput and cost metrics, from the timings the backend measured with the device synchronised."""

from __future__ import annotations

import numpy as np

from benchbench.evaluation import EvalContext


def train_steps_per_s(ctx: EvalContext) -> float:
    """The first step is compile / warm-up and reported as ``compile_s``; the rest are timed."""
    timed_steps = max(ctx.result.steps - 1, 1)
    return timed_steps / ctx.result.train_s if ctx.result.train_s > 0 else float("inf")


def train_examples_per_s(ctx: EvalContext) -> float:
    return train_steps_per_s(ctx) * ctx.trial.settings.batch_size


def train_step_ms(ctx: EvalContext) -> float:
    return 1000.0 / train_steps_per_s(ctx)


def compile_s(ctx: EvalContext) -> float:
    return ctx.result.compile_s


def peak_memory_mb(ctx: EvalContext) -> float | None:
    return ctx.result.peak_memory_mb


def final_loss(ctx: EvalContext) -> float:
    losses = ctx.result.losses
    return float(np.mean(losses[-max(1, len(losses) // 20) :]))
