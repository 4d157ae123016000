"""Registers the built-in samplers through the public ``register_samplers`` hook."""

from __future__ import annotations

from benchbench import hookimpl


@hookimpl
def register_samplers(register):
    """Langevin samplers arrive with the evaluation work (see the issue on evaluation)."""
