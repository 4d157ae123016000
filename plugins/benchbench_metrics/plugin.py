"""Registers the built-in metrics through the public ``register_metrics`` hook."""

from __future__ import annotations

from benchbench import hookimpl
from benchbench.specs import Metric

_M = "benchbench_metrics.score_quality"
_T = "benchbench_metrics.throughput"

METRICS = (
    Metric(
        "fisher_divergence",
        "1/2 E_test ||s_theta(x) - grad log p(x)||^2 on held-out data (needs the true score)",
        "lower",
        f"{_M}:fisher_divergence",
        requires=("score",),
    ),
    Metric(
        "train_steps_per_s",
        "training steps per second (device synchronised, compile excluded)",
        "higher",
        f"{_T}:train_steps_per_s",
    ),
    Metric("train_examples_per_s", "training examples per second", "higher", f"{_T}:train_examples_per_s"),
    Metric("train_step_ms", "milliseconds per training step", "lower", f"{_T}:train_step_ms"),
    Metric(
        "compile_s", "first-step (compile / warm-up) seconds, excluded from step timing", "lower", f"{_T}:compile_s"
    ),
    Metric(
        "peak_memory_mb",
        "peak memory in MB (the run's memory_source tag says how it was measured)",
        "lower",
        f"{_T}:peak_memory_mb",
    ),
    Metric("final_loss", "mean training loss over the last 5% of steps", "lower", f"{_T}:final_loss"),
)


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        register(metric)
