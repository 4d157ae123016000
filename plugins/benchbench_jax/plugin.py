"""Registers the JAX backend. Importing this module must not import jax."""

from __future__ import annotations

from benchbench import Backend, hookimpl

JAX = Backend(
    name="jax",
    description="JAX + optax, one jit-compiled train step, on cpu or gpu",
    program="benchbench_jax.backend:JaxProgram",
    device_check="benchbench_jax.backend:resolve_device",
    requires=("jax", "optax"),
)


@hookimpl
def register_backends(register):
    register(JAX)
