"""Registers the torch backend. Importing this module must not import torch."""

from __future__ import annotations

from benchbench import Backend, hookimpl

TORCH = Backend(
    name="torch",
    description="PyTorch (eager, optional torch.compile) on cpu or cuda",
    program="benchbench_torch.backend:TorchProgram",
    device_check="benchbench_torch.backend:resolve_device",
    requires=("torch",),
)


@hookimpl
def register_backends(register):
    register(TORCH)
