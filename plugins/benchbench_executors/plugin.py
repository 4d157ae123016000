"""Registers the built-in executors through the public ``register_executors`` hook."""

from __future__ import annotations

from benchbench import hookimpl
from benchbench.specs import Executor

LOCAL = Executor(
    name="local",
    description="in-process and sequential, with a progress bar over training steps",
    execute="benchbench_executors.local:execute",
)


@hookimpl
def register_executors(register):
    register(LOCAL)
