"""Input errors that would otherwise surface inside every trial, checked when the trial matrix is built.

A missing or corrupt data file, or ``--device cuda`` on a machine without one, is the user's input, not a
trial's failure: found inside a trial it became a FAILED run per trial and exit 1. Found here (``bench run``
and ``bench run --dry-run`` alike) it is one line and exit 2, and nothing is written to the store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from benchbench.plugins import Plugins
from benchbench.specs import resolve_ref
from benchbench.trial import Trial

HOST_DEVICES = ("auto", "cpu")  # always present; only an accelerator request needs asking the backend


def check_inputs(plugins: Plugins, trials: Sequence[Trial], on_this_machine: bool = True) -> None:
    """Raise the UsageError a trial would raise for its input, once, before anything runs.

    ``on_this_machine`` is False when trials run on other machines (a Ray cluster): their devices and files are
    theirs, not the driver's, so only the driver's own checks apply.
    """
    if not on_this_machine:
        return
    for backend, device in sorted({(t.backend, t.settings.device) for t in trials}):
        if device not in HOST_DEVICES:
            check_device(plugins, backend, device)
    seen: set[tuple[str, str]] = set()
    for trial in trials:
        key = (trial.dataset, json.dumps(dict(trial.dataset_params), sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            check_files(plugins, trial)


def check_device(plugins: Plugins, backend: str, device: str) -> None:
    """The backend's declared ``device_check(device)`` raises UsageError when the device is absent (a backend
    that declares none is not asked)."""
    spec = plugins.get("backend", backend)
    if spec.device_check is not None:
        resolve_ref(spec.device_check, f"backend {backend!r} (device_check)")(device)


def check_files(plugins: Plugins, trial: Trial) -> None:
    """A dataset with a ``path`` parameter reads the user's files: load it once here (seed 0), so a missing,
    empty, corrupt or wrongly shaped file is reported by the dataset's own ParameterError before any run."""
    family = plugins.get("dataset", trial.dataset)
    if not any(param.kind == "path" and trial.dataset_params.get(param.name) for param in family.params):
        return
    resolve_ref(family.load, f"dataset {family.name!r}")(dict(trial.dataset_params), 0)
