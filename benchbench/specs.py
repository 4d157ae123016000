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

    The torch ``generator`` is ``None`` in the compiled step (``--compile``, :mod:`benchbench_torch.compiled`): a
    ``torch.Generator`` object would break the graph, so torch's default generator, seeded by the trial, is the
    source there. Pass it on as ``generator=`` and the loss works in both.
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
    perf_reference: Mapping[str, Any] = field(default_factory=dict)
    """Parameters of a reference variant that ``bench perf`` times beside the default (exact score matching:
    ``{"method": "loop"}``, the loop of d autograd calls that users write first)."""
    noise_schedule: str = "ladder"

    def loss_for(self, backend: str) -> Callable[..., Any]:
        if backend not in self.losses:
            raise SkipTrial(
                f"objective {self.name!r} has no {backend} implementation "
                f"(it implements: {', '.join(sorted(self.losses)) or 'none'})"
            )
        return resolve_ref(self.losses[backend], f"objective {self.name!r} ({backend} loss)")


@dataclass(frozen=True)
class Checkpoint:
    """A point where the model was evaluated: after ``step`` steps and ``train_time_s`` training seconds."""

    step: int
    train_time_s: float


@dataclass(frozen=True)
class TrainResult:
    """What training measured, as the core's loop timed it (:mod:`benchbench.training`); numpy and floats.

    ``compile_s`` is the first step, ``warmup_s`` the ``warmup_steps`` after it, ``train_s`` the ``timed_steps``
    after those; ``steps`` counts them all. ``tags`` are the program's (e.g. its thread count). ``checkpoints``
    are where the loop evaluated the model, the last one where training stopped.
    """

    model: TrainedModel
    losses: np.ndarray
    steps: int
    train_s: float
    compile_s: float
    warmup_s: float = 0.0
    warmup_steps: int = 0
    timed_steps: int = 0
    peak_memory_mb: float | None = None
    memory_source: str = ""
    device: str = "cpu"
    tags: Mapping[str, str] = field(default_factory=dict)
    checkpoints: tuple[Checkpoint, ...] = ()

    @property
    def train_time_s(self) -> float:
        """Training seconds: warm-up and timed steps (what a time budget counts; the curves' time axis)."""
        return self.warmup_s + self.train_s

    @property
    def step_ms(self) -> float | None:
        """Timed seconds / timed steps, in ms; None when no step was timed (a 1-step trial)."""
        return 1000.0 * self.train_s / self.timed_steps if self.timed_steps else None


class TrainedModel(Protocol):
    """A trained score model seen from numpy, so metrics are computed once for every backend."""

    backend: str
    noise_conditional: bool
    sigmas: np.ndarray | None

    def score(self, x: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Scores of ``x`` (n, d); noise-conditional models take the sigma to evaluate at."""

    def score_and_trace(self, x: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores (n, d) and the exact trace of their Jacobian (n,), chunked to bound memory."""


@dataclass(frozen=True)
class Backend:
    """A numerical framework on a device.

    ``program`` names a callable ``(trial, data, objective, hparams) -> TrainingProgram`` (usually the class):
    the model, optimiser and data of one trial, which the core's loop runs and times
    (:class:`benchbench.training.TrainingProgram` is the contract). ``requires`` lists the modules it needs; a
    backend whose modules are missing is listed as unavailable and never chosen by default.
    """

    name: str
    description: str
    program: Ref
    requires: tuple[str, ...] = ()
    device_check: Ref | None = None
    """``device_check(device)`` raises UsageError when ``--device`` names a device this machine lacks; called when
    the trial matrix is built, so a sweep asking for an absent GPU stops before anything is written."""
    losses: str = ""
    """Which of an objective's losses this backend trains (``Objective.losses`` key): its own name by default; a
    variant of a framework names the framework (a torch backend with another optimiser trains the torch losses)."""

    @property
    def loss_key(self) -> str:
        return self.losses or self.name

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
    ``curve`` metrics are also computed during training (see the field).
    It runs only on datasets whose :attr:`Data.tags` include every tag in ``requires``.
    """

    name: str
    description: str
    direction: Literal["lower", "higher"]
    compute: Ref
    requires: tuple[str, ...] = ()
    needs_samples: bool = False
    headline: bool = False
    """Shown by default: a column of ``bench table`` and of the table ``bench run`` prints, and the value printed
    beside each finished trial."""
    curve: bool = False
    """Also computed at the checkpoints of training, on a fixed subset of the test split (a convergence curve);
    for cheap score metrics only: it runs several times per trial."""

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
    every_seed: bool = False
    """Render for every seed; by default only for seed 0 of each configuration: the other seeds' pictures show the
    same thing, and a picture costs about a second (measured: density_2d 1.0 s of a 2-D trial's 1.9 s evaluation)."""

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
    default_for: Literal["", "score", "noise_conditional"] = ""
    """The sampler a trial uses without ``--sampler``: for plain score models, or for noise-conditional ones."""
    fallback: str = "numpy"
    """The key in ``samplers`` of the implementation any backend's model can use (numpy in, numpy out), for a
    backend without one of its own."""


@dataclass(frozen=True)
class Executor:
    """Where trials run: scheduling only; what a trial does is :func:`benchbench.run_job`'s.

    ``execute(jobs, options) -> Iterator[TrialOutcome]`` must:

    - call ``benchbench.run_job(job, progress)`` on each job (a picklable :class:`benchbench.TrialJob`) in-process, in
      a pool or on a cluster, and yield each :class:`benchbench.TrialOutcome` as its trial ends, in any order;
    - report training progress through ``options["step_progress"](job, steps_done)`` when it can (the sweep draws a
      bar per running trial from it); it may never call it;
    - for a trial whose worker is gone (it died, was killed, or overran ``job.timeout`` and was stopped), yield
      ``benchbench.record_lost_trial(job, status, reason)``, which ends the trial's run in the store with the
      reason (``benchbench.timeout_reason(job.timeout)`` for a timeout), so no run is left RUNNING;
    - stop its running trials when the generator is closed (Ctrl-C, SIGTERM), in a ``finally``.

    ``options`` are the executor's declared ``params``, resolved, plus ``step_progress``.
    """

    name: str
    description: str
    execute: Ref
    params: tuple[Param, ...] = ()
    requires: tuple[str, ...] = ()
    concurrent: bool = True
    """Trials may write to the tracking store at the same time (unless ``workers`` is 1): a sqlite store then
    gets a private server in front of it for the sweep."""

    def unavailable_reason(self) -> str | None:
        missing = missing_modules(self.requires)
        return f"not installed: {', '.join(missing)}" if missing else None


ExecuteFn = Callable[[Sequence[Any], Mapping[str, Any]], Iterator[Any]]
