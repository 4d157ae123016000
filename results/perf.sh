#!/usr/bin/env bash
# Regenerates results/perf.md: every built-in objective's train step in torch (eager and compiled, on 1 and 2 threads)
# and JAX, at d = 16 and 64, against its FLOP floor, with torch/JAX parity and the exact trace against its loop.
# Take it on a quiet machine (check `uptime`): nothing else may run beside it. Extra arguments go to every
# `bench perf` (e.g. --repeats 1 --steps 5 for a smoke run). RESULTS_DIR=path writes somewhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
# The built-in plugins only (the peers are timed by results/audit.sh).
export BENCHBENCH_PLUGINS="${BENCHBENCH_PLUGINS:-objectives,torch,jax,datasets,metrics,samplers,executors}"
python results/perf.py "${RESULTS_DIR:-results}/perf.md" "$@"
