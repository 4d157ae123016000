#!/usr/bin/env bash
# Regenerates results/audit.md: the peers' losses (plugins/benchbench-peers) through `bench check`, with their
# step time beside ours (`bench perf`). Needs the peers' libraries installed (see plugins/benchbench-peers/README.md).
# Take the figures on a quiet machine (check `uptime`); extra arguments go to `bench perf`, e.g. --repeats 1 --steps 3.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/plugins/benchbench-peers/src${PYTHONPATH:+:$PYTHONPATH}"
python results/audit.py results/audit.md "$@"
