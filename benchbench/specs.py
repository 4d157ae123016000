"""The plain objects plugins register, and the protocols the runner calls them through.

Everything here is importable without torch, jax or mlflow: a plugin module builds these objects
at registration time and names its heavy implementation with a ``"module:attribute"`` reference that
is imported only when a trial needs it (see :func:`resolve_ref`). That is what keeps ``bench list``
fast and lets a machine without JAX run the torch half.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from benchbench.errors import PluginError, SkipTrial
from benchbench.params import Param

Ref = str | Callable[..., Any]
"""A callable, or ``"package.module:attribute"`` naming one, imported on first use."""


def resolve_ref(ref: Ref, owner: str) -> Callable[..., Any]:
    """Import a lazy reference; a broken one is a PluginError naming ``owner``."""
    if callable(ref):
        return ref
    module_name, _, attribute = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as error:  # noqa: BLE001 - any import failure of a plugin is reported the same way
        raise PluginError(f"{owner}: cannot load {ref!r}: {type(error).__name__}: {error}") from error
    if not callable(target):
        raise PluginError(f"{owner}: {ref!r} is not callable")
    return target


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The modules among ``modules`` that are not installed, found without importing them."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


@dataclass(frozen=True)
class Objective:
    """A score-matching loss with its hyperparameters and one implementation per backend.

    ``losses`` maps a backend name to its loss. Signatures (all pure; randomness is passed in):

    - torch: ``loss(score_fn, x, generator, **hparams) -> scalar tensor``
    - jax:   ``loss(score_fn, x, key, **hparams) -> scalar``

    ``score_fn(x)`` maps a batch ``(n, d)`` to scores ``(n, d)``; for ``noise_conditional``
    objectives it is ``score_fn(x, sigma)`` with one sigma per example, shape ``(n,)``.
    ``biased`` objectives (e.g. denoising) do not estimate the implicit score-matching objective J
    without bias; the conformance kit then checks their declared closed form instead:
    ``expected_bias(hparams, A, b, mu, Sigma) -> float`` = E[loss] - J for the linear score s(x) = -A(x - b)
    (which ignores sigma) on data of mean mu and covariance Sigma. ``noise_schedule`` says how a
    noise-conditional objective draws its noise (one of :data:`benchbench.noise.SCHEDULES`), from which
    :func:`benchbench.noise.objective_ladder` builds the trained model's ``sigmas``.
    """

    name: str
    description: str
    losses: Mapping[str, Ref]
    params: tuple[Param, ...] = ()
    noise_conditional: bool = False
    biased: bool = False
    reference: str = ""
    expected_bias: Ref | None = None
    noise_schedule: str = "ladder"

    def loss_for(self, backend: str) -> Callable[..., Any]:
        if backend not in self.losses:
            raise SkipTrial(
                f"objective {self.name!r} has no {backend} implementation "
                f"(it implements: {', '.join(sorted(self.losses)) or 'none'})"
            )
        return resolve_ref(self.losses[backend], f"objective {self.name!r} ({backend} loss)")


@dataclass(frozen=True)
class TrainResult:
    """What a backend hands back after training; numbers cross the boundary as numpy/float."""

    model: TrainedModel
    losses: np.ndarray
    steps: int
    train_s: float
    compile_s: float
    peak_memory_mb: float | None = None
    memory_source: str = ""
    device: str = "cpu"
    extra_metrics: Mapping[str, float] = field(default_factory=dict)


class TrainedModel(Protocol):
    """A trained score model seen from numpy, so metrics are computed once for every backend."""

    backend: str
    noise_conditional: bool
    sigmas: np.ndarray | None

    def score(self, x: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Scores of ``x`` (n, d); noise-conditional models take the sigma to evaluate at."""

    def score_and_trace(self, x: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n, d) and the exact trace of their Jacobian (n,), chunked to bound memory."""


class TrainFn(Protocol):
    def __call__(
        self,
        trial: Any,
        data: Data,
        objective: Objective,
        hparams: Mapping[str, Any],
        progress: Callable[[int], None],
    ) -> TrainResult: ...


@dataclass(frozen=True)
class Backend:
    """A numerical framework on a device. ``train`` is a :class:`TrainFn` reference.

    ``requires`` lists the modules it needs; a backend whose modules are missing is listed as
    unavailable and never chosen by default.
    """

    name: str
    description: str
    train: Ref
    requires: tuple[str, ...] = ()

    def unavailable_reason(self) -> str | None:
        missing = missing_modules(self.requires)
        return f"not installed: {', '.join(missing)}" if missing else None


DataTag = Literal["synthetic", "score", "log_prob", "image", "mixture", "labels", "perturbed_score"]


@dataclass(frozen=True)
class Data:
    """Train/test arrays of one dataset, flattened to ``(n, d)`` with the per-example ``shape`` kept.

    Synthetic datasets also know the truth: ``score(x)`` and ``log_prob(x)`` (float64 numpy,
    vectorised), and where it has a closed form ``perturbed_score(x, sigma)``, the score of the
    density convolved with N(0, sigma^2 I). Mixtures give their ``modes`` and ``weights``.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    shape: tuple[int, ...]
    score: Callable[[np.ndarray], np.ndarray] | None = None
    log_prob: Callable[[np.ndarray], np.ndarray] | None = None
    perturbed_score: Callable[[np.ndarray, float], np.ndarray] | None = None
    modes: np.ndarray | None = None
    weights: np.ndarray | None = None
    labels_train: np.ndarray | None = None
    labels_test: np.ndarray | None = None
    is_image: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    @property
    def tags(self) -> frozenset[str]:
        tags = {"image"} if self.is_image else set()
        for name in ("score", "log_prob", "perturbed_score"):
            if getattr(self, name) is not None:
                tags.add(name)
        if self.score is not None:
            tags.add("synthetic")
        if self.modes is not None:
            tags.add("mixture")
        if self.labels_train is not None:
            tags.add("labels")
        return frozenset(tags)


@dataclass(frozen=True)
class DatasetFamily:
    """A parameterised dataset; ``load(params, seed) -> Data`` with a deterministic split by seed."""

    name: str
    description: str
    load: Ref
    params: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Metric:
    """A number computed after training, in numpy, the same code for every backend.

    ``compute(ctx: EvalContext)`` returns a float, a mapping of extra named values (logged as
    ``name`` for the ``"value"`` key and ``name.key`` for the others), or None when it does not apply.
    It runs only on datasets whose :attr:`Data.tags` include every tag in ``requires``.
    """

    name: str
    description: str
    direction: Literal["lower", "higher"]
    compute: Ref
    requires: tuple[str, ...] = ()
    needs_samples: bool = False

    def applies_to(self, data: Data) -> bool:
        return set(self.requires) <= data.tags


@dataclass(frozen=True)
class Report:
    """Pictures (or other files) logged as MLflow artifacts of a trial.

    ``render(ctx: EvalContext) -> {file name: bytes}``; it runs only on datasets whose tags include
    every tag in ``requires``.
    """

    name: str
    description: str
    render: Ref
    requires: tuple[str, ...] = ()

    def applies_to(self, data: Data) -> bool:
        return set(self.requires) <= data.tags


@dataclass(frozen=True)
class Sampler:
    """Draws samples from a trained model; ``samplers`` maps a backend to its implementation:
    ``sample(model, x0: np.ndarray, seed: int, **params) -> np.ndarray``."""

    name: str
    description: str
    samplers: Mapping[str, Ref]
    params: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Executor:
    """Where trials run. ``execute(jobs, options) -> Iterator[TrialOutcome]`` calls
    :func:`benchbench.runner.run_job` on each job (picklable) in-process, in a pool or on a cluster,
    and yields outcomes as trials finish."""

    name: str
    description: str
    execute: Ref
    params: tuple[Param, ...] = ()
    requires: tuple[str, ...] = ()

    def unavailable_reason(self) -> str | None:
        missing = missing_modules(self.requires)
        return f"not installed: {', '.join(missing)}" if missing else None


ExecuteFn = Callable[[Sequence[Any], Mapping[str, Any]], Iterator[Any]]
