"""What a metric sees after training, and the loop that computes every applicable metric."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from benchbench.params import resolve
from benchbench.plugins import Plugins
from benchbench.specs import Data, Metric, Report, TrainResult, resolve_ref

T = TypeVar("T")


@dataclass
class EvalContext:
    """One trained model with its dataset, as metrics see it (all numpy).

    ``samples`` are drawn once, on first use, by the trial's sampler (``--sampler``, or annealed
    Langevin for noise-conditional models and plain Langevin otherwise), and shared by every
    sample-based metric; ``sampling_s`` is the time that took. :meth:`shared` is the same for any other work
    that several metrics need.
    """

    data: Data
    result: TrainResult
    trial: Any
    plugins: Plugins
    seed: int = 0
    sampling_s: float | None = None
    sampler_used: str | None = None
    notes: dict[str, str] = field(default_factory=dict)
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def model(self):
        return self.result.model

    def shared(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per context under ``key``: work that several metrics read (one MAP solve serves
        map_error and map_error_ratio) is paid once per evaluation, not once per metric."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    def default_sampler(self) -> str | None:
        """The sampler plugin that declares itself the default for this kind of model (``Sampler.default_for``)."""
        kind = "noise_conditional" if self.model.noise_conditional else "score"
        return next((s.name for s, _ in self.plugins.items("sampler") if s.default_for == kind), None)

    @cached_property
    def samples(self) -> np.ndarray | None:
        settings = self.trial.settings
        name = settings.sampler or self.default_sampler()
        if name is None:
            self.notes["sampler"] = "no installed sampler is the default for this kind of model; give --sampler"
            return None
        if name not in self.plugins.names("sampler"):
            self.notes["sampler"] = f"no sampler {name!r} installed"
            return None
        sampler = self.plugins.get("sampler", name)
        # A backend without its own implementation falls back to the numpy reference (slower, same maths).
        ref = sampler.samplers.get(self.trial.backend) or sampler.samplers.get(sampler.fallback)
        if ref is None:
            self.notes["sampler"] = f"sampler {name!r} has no {self.trial.backend} implementation"
            return None
        params = resolve(f"sampler {name!r}", sampler.params, settings.sampler_params if settings.sampler else {})
        sample = resolve_ref(ref, f"sampler {name!r}")
        rng = np.random.default_rng(self.seed + 7919)
        low, high = self.data.train.min(axis=0), self.data.train.max(axis=0)
        x0 = rng.uniform(low, high, size=(settings.n_samples, self.data.dim))
        start = time.perf_counter()
        samples = np.asarray(sample(self.model, x0, self.seed, **params), dtype=np.float64)
        self.sampling_s = time.perf_counter() - start
        self.sampler_used = name
        return samples


def compute_metrics(ctx: EvalContext, metrics: list[Metric]) -> tuple[dict[str, float], dict[str, str]]:
    """Every applicable metric, each isolated: one metric's error is recorded, not fatal."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for metric in metrics:
        if not metric.applies_to(ctx.data):
            continue
        try:
            if metric.needs_samples and ctx.samples is None:
                continue
            result = resolve_ref(metric.compute, f"metric {metric.name!r}")(ctx)
        except Exception as error:  # noqa: BLE001 - a broken metric must not lose the trained trial
            errors[metric.name] = f"{type(error).__name__}: {error}"
            continue
        for key, value in _flatten(metric.name, result).items():
            values[key] = value
    return values, errors


def _flatten(name: str, result: float | Mapping[str, float] | None) -> dict[str, float]:
    if result is None:
        return {}
    if isinstance(result, Mapping):
        return {(name if key == "value" else f"{name}.{key}"): float(v) for key, v in result.items()}
    return {name: float(result)}


def render_reports(ctx: EvalContext, reports: list[Report]) -> tuple[dict[str, bytes], dict[str, str]]:
    """Every applicable report's files; one report's error is recorded, not fatal."""
    files: dict[str, bytes] = {}
    errors: dict[str, str] = {}
    for report in reports:
        if not report.applies_to(ctx.data):
            continue
        try:
            files.update(resolve_ref(report.render, f"report {report.name!r}")(ctx))
        except Exception as error:  # noqa: BLE001 - a broken picture must not lose the trained trial
            errors[report.name] = f"{type(error).__name__}: {error}"
    return files, errors
