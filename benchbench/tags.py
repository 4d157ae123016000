"""The names benchbench writes into the tracking store: tag keys and trial statuses, spelled once.

The runner, the sweep, the table, the plots and the curves read and write runs through these names only, so a
renamed tag cannot leave one of them reading a key nobody writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PREFIX = "bench."

# What a run is, and its identity.
KIND = PREFIX + "kind"
KIND_TRIAL, KIND_SWEEP = "trial", "sweep"
CONFIG_HASH = PREFIX + "config_hash"
OBJECTIVE = PREFIX + "objective"
OBJECTIVE_SPEC = PREFIX + "objective_spec"
BACKEND = PREFIX + "backend"
DATASET = PREFIX + "dataset"
DATASET_FAMILY = PREFIX + "dataset_family"
SEED = PREFIX + "seed"

# How a trial ended.
STATUS = PREFIX + "status"
FINISHED, SKIPPED, FAILED, KILLED = "finished", "skipped", "failed", "killed"
STATUSES = (FINISHED, SKIPPED, FAILED, KILLED)
DONE = (FINISHED, SKIPPED)
"""Outcomes a resumed sweep reuses instead of running again."""
ERROR = PREFIX + "error"
SKIP_REASON = PREFIX + "skip_reason"

# What a finished trial measured with.
DEVICE = PREFIX + "device"
MEMORY_SOURCE = PREFIX + "memory_source"
SAMPLER = PREFIX + "sampler"
CURVES = PREFIX + "curves"
"""Comma-separated names of the step metrics logged at checkpoints (the convergence curves)."""
EVAL_ERROR = PREFIX + "eval_error."
NOTE = PREFIX + "note."

# A sweep's lock on its experiment (benchbench.store.SweepLock): a RUNNING run of this kind.
KIND_LOCK = "lock"
LOCK_OWNER = PREFIX + "lock_owner"
HEARTBEAT = PREFIX + "heartbeat"

# A sweep's parent run.
EXECUTOR = PREFIX + "executor"
SUMMARY = PREFIX + "summary"
REUSED = PREFIX + "reused_runs."
COMPARISON_ERROR = PREFIX + "comparison_error"


_IDS_PER_TAG = 150
"""150 run ids of 32 hex digits and a space: under the 5000 characters the tracker keeps per tag."""


def reused_tags(run_ids: Sequence[str]) -> dict[str, str]:
    """The parent-run tags that list the runs a resumed sweep reused, in chunks that fit a tag."""
    return {
        f"{REUSED}{i // _IDS_PER_TAG}": " ".join(run_ids[i : i + _IDS_PER_TAG])
        for i in range(0, len(run_ids), _IDS_PER_TAG)
    }


def reused_run_ids(parent_tags: Mapping[str, Any]) -> set[str]:
    """The run ids a sweep reused, read back from its parent run's tags (an MLflow tag dict, or a row of
    ``mlflow.search_runs`` whose columns are ``tags.<name>``): a sweep's trials are its children and these."""
    ids: set[str] = set()
    for key, value in parent_tags.items():
        if key.removeprefix("tags.").startswith(REUSED) and isinstance(value, str):
            ids.update(value.split())
    return ids


def column(tag: str) -> str:
    """The column of ``tag`` in a ``mlflow.search_runs`` data frame."""
    return "tags." + tag
