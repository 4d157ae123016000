"""A trial (one training + evaluation) and the sweep of trials a ``bench run`` asks for."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from benchbench import __version__
from benchbench.errors import UsageError
from benchbench.params import format_spec, parse_spec, resolve
from benchbench.plugins import Plugins

DEVICES = ("auto", "cpu", "cuda", "gpu")
DTYPES = ("float32", "float64")
MODELS = ("mlp", "energy-mlp")
ACTIVATIONS = ("softplus", "tanh", "elu", "swish", "relu")


@dataclass(frozen=True)
class Settings:
    """Everything about a trial that is not the objective, backend, dataset or seed."""

    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    device: str = "auto"
    dtype: str = "float32"
    model: str = "mlp"
    width: int = 128
    depth: int = 3
    activation: str = "softplus"
    compile: bool = False
    sampler: str | None = None
    sampler_params: Mapping[str, Any] = field(default_factory=dict)
    n_samples: int = 1000

    def __post_init__(self) -> None:
        for name, value, valid in (
            ("device", self.device, DEVICES),
            ("dtype", self.dtype, DTYPES),
            ("model", self.model, MODELS),
            ("activation", self.activation, ACTIVATIONS),
        ):
            if value not in valid:
                raise UsageError(f"--{name} {value!r} is not valid; valid: {', '.join(valid)}")
        for name in ("steps", "batch_size", "width", "depth", "n_samples"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise UsageError(f"--lr must be a positive finite number, got {self.lr}")


@dataclass(frozen=True)
class Trial:
    """One (objective, backend, dataset, seed, settings): one MLflow child run."""

    objective: str
    objective_params: Mapping[str, Any]
    backend: str
    dataset: str
    dataset_params: Mapping[str, Any]
    seed: int
    settings: Settings
    objective_label: str = ""
    dataset_label: str = ""

    @property
    def run_name(self) -> str:
        """Readable and unique within a sweep, e.g. ``sliced/torch/gaussian:dim=16/seed0``."""
        objective = self.objective_label or self.objective
        return f"{objective}/{self.backend}/{self.dataset_label or self.dataset}/seed{self.seed}"

    def config(self) -> dict[str, Any]:
        """The resolved configuration: logged as params and as an artifact, and hashed."""
        return {
            "objective": self.objective,
            "objective_params": dict(self.objective_params),
            "backend": self.backend,
            "dataset": self.dataset,
            "dataset_params": dict(self.dataset_params),
            "seed": self.seed,
            "settings": {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(self.settings).items()},
            "benchbench_version": __version__,
        }

    @property
    def config_hash(self) -> str:
        canonical = json.dumps(self.config(), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _resolve_choice(plugins: Plugins, kind: str, spec: str) -> tuple[str, dict[str, Any], str]:
    name, raw = parse_spec(spec)
    obj = plugins.get(kind, name)
    values = resolve(f"{kind} {name!r}", obj.params, raw)
    label = format_spec(name, {k: values[k] for k in raw})
    return name, values, label


def build_trials(
    plugins: Plugins,
    objectives: Sequence[str],
    backends: Sequence[str],
    datasets: Sequence[str],
    seeds: int,
    settings: Settings,
) -> list[Trial]:
    """The trial matrix, every name and parameter validated before anything runs."""
    if objectives == ["all"] or list(objectives) == ["all"]:
        objectives = plugins.names("objective")
    if not backends:
        backends = [b.name for b, _ in plugins.items("backend") if b.unavailable_reason() is None]
        if not backends:
            raise UsageError("no backend is available; install one: pip install 'benchbench[torch]'")
    for name in backends:
        reason = plugins.get("backend", name).unavailable_reason()
        if reason:
            raise UsageError(f"backend {name!r} is unavailable ({reason})")
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {seeds}")
    if settings.sampler is not None:
        sampler = plugins.get("sampler", settings.sampler)
        settings = replace(
            settings, sampler_params=resolve(f"sampler {sampler.name!r}", sampler.params, settings.sampler_params)
        )
    resolved_objectives = [_resolve_choice(plugins, "objective", spec) for spec in objectives]
    resolved_datasets = [_resolve_choice(plugins, "dataset", spec) for spec in datasets]
    trials = [
        Trial(o, ov, b, d, dv, seed, settings, objective_label=ol, dataset_label=dl)
        for d, dv, dl in resolved_datasets
        for o, ov, ol in resolved_objectives
        for b in backends
        for seed in range(seeds)
    ]
    names = [trial.run_name for trial in trials]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UsageError(f"the sweep names the same trial twice: {', '.join(duplicates)}")
    return trials
