"""Registers the built-in executors through the public ``register_executors`` hook."""

from __future__ import annotations

from benchbench import Executor, Param, hookimpl

LOCAL = Executor(
    name="local",
    description="in-process and sequential, with a progress bar over training steps",
    execute="benchbench_executors.local:execute",
    concurrent=False,
)

PROCESS = Executor(
    name="process",
    description="a local pool: each trial in a fresh process of its own, so a crash or out-of-memory kill "
    "fails only that trial; trials log through an MLflow server (a private one in front of a sqlite store)",
    execute="benchbench_executors.process:execute",
    params=(Param("workers", 2, "trials running at once (BLAS/OpenMP threads are split among them)", low=1),),
)

RAY = Executor(
    name="ray",
    description="one Ray task per trial, on a cluster (--address auto|HOST:PORT|ray://HOST:PORT) or on a local "
    "Ray instance started for the sweep; trials log through an MLflow server every node reaches",
    execute="benchbench_executors.ray_tasks:execute",
    params=(
        Param("address", "", "Ray cluster address; empty: $RAY_ADDRESS, else a local instance for this sweep"),
        Param(
            "workers", 0, "trials running at once; 0: as many as the cluster's CPUs allow (local: every core)", low=0
        ),
        Param("cpus_per_trial", 1.0, "CPUs each trial's task asks Ray for", low=0.01),
    ),
    requires=("ray",),
)


@hookimpl
def register_executors(register):
    for executor in (LOCAL, PROCESS, RAY):
        register(executor)
