"""benchbench: a plugin-based benchmark suite for score-matching objectives.

This module is the whole public interface for plugin authors: import everything from ``benchbench``, never from
``benchbench.runner`` or another plugin's package. The plain objects a plugin registers, the hook marker and the
errors are imported eagerly (they are light); what runs trials (the training loop, the evaluation context, the
executor's trial functions) is imported on first use, so ``bench list`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from benchbench.errors import (  # noqa: E402
    BenchError,
    ParameterError,
    PluginError,
    SkipTrial,
    TrackingError,
    TrialFailure,
    UsageError,
)
from benchbench.hookspecs import hookimpl  # noqa: E402
from benchbench.params import Param  # noqa: E402
from benchbench.specs import (  # noqa: E402
    Backend,
    Data,
    DatasetFamily,
    Executor,
    Metric,
    Objective,
    Report,
    Sampler,
    TrainedModel,
    TrainResult,
)

_LAZY = {
    "TrainingProgram": "benchbench.training",
    "EvalContext": "benchbench.evaluation",
    "TrialJob": "benchbench.runner",
    "TrialOutcome": "benchbench.runner",
    "run_job": "benchbench.runner",
    "record_lost_trial": "benchbench.recovery",
    "timeout_reason": "benchbench.deadlines",
    "draw_split": "benchbench.splits",
    "choose_rows": "benchbench.splits",
    "noise_rng": "benchbench.splits",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'benchbench' has no attribute {name!r}")


__all__ = [
    "__version__",
    "hookimpl",
    # what a plugin registers
    "Objective",
    "Backend",
    "DatasetFamily",
    "Data",
    "Metric",
    "Report",
    "Sampler",
    "Executor",
    "Param",
    # what a backend returns and a metric sees
    "TrainingProgram",
    "TrainedModel",
    "TrainResult",
    "EvalContext",
    # what an executor calls
    "TrialJob",
    "TrialOutcome",
    "run_job",
    "record_lost_trial",
    "timeout_reason",
    # deterministic splits for dataset plugins
    "draw_split",
    "choose_rows",
    "noise_rng",
    # errors
    "BenchError",
    "UsageError",
    "ParameterError",
    "PluginError",
    "TrackingError",
    "TrialFailure",
    "SkipTrial",
]
