"""The hooks a benchbench plugin implements. This page is the whole contract.

A plugin is a module (or object) with functions marked ``@hookimpl``, found through the
entry-point group ``benchbench`` or ``bench --plugin module.path``. Each ``register_*`` hook receives
a ``register`` callback and calls it once per object, so one plugin may register many things or none,
conditionally. The built-in plugins use exactly these hooks. Registration must stay cheap: no
torch/jax/mlflow imports at module level; name heavy code with ``"module:attribute"`` references
(see :mod:`benchbench.specs`).

Example::

    from benchbench import hookimpl
    from benchbench.specs import Objective

    @hookimpl
    def register_objectives(register):
        register(Objective(name="my-sm", description="...", losses={"torch": "my_sm.losses:torch_loss"}))
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "benchbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[object], None]


@hookspec
def register_objectives(register: Register) -> None:
    """Register :class:`benchbench.specs.Objective` objects (score-matching losses)."""


@hookspec
def register_backends(register: Register) -> None:
    """Register :class:`benchbench.specs.Backend` objects (a framework that trains and evaluates models)."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register :class:`benchbench.specs.DatasetFamily` objects."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register :class:`benchbench.specs.Metric` objects (numbers computed after training)."""


@hookspec
def register_reports(register: Register) -> None:
    """Register :class:`benchbench.specs.Report` objects (pictures logged as artifacts of each trial)."""


@hookspec
def register_samplers(register: Register) -> None:
    """Register :class:`benchbench.specs.Sampler` objects (e.g. Langevin dynamics per backend)."""


@hookspec
def register_executors(register: Register) -> None:
    """Register :class:`benchbench.specs.Executor` objects (where trials run)."""
