#!/usr/bin/env bash
# Regenerate everything in results/ (tables, plots, README.md) from a fresh run of the default suite:
# `bench run --quick` into a new temporary MLflow store, then `bench table` in every format. Nothing here is
# typed by hand. Extra arguments go to `bench run` (e.g. `--steps 100` for a smoke run).
# RESULTS_DIR=path writes somewhere else than results/ (the tests and smoke runs use that).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${RESULTS_DIR:-$root/results}"
bench="${BENCH:-$(command -v bench || echo "$root/.venv/bin/bench")}"
store="$(mktemp -d "${TMPDIR:-/tmp}/bench-results.XXXXXX")"
trap 'rm -rf "$store"' EXIT
uri="sqlite:///$store/mlflow.db"
experiment="results"

# The built-in plugins only: the results are about benchbench's own objectives (peers: results/audit.sh).
export BENCHBENCH_PLUGINS="${BENCHBENCH_PLUGINS:-objectives,torch,jax,datasets,metrics,samplers,executors}"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
cd "$store" # MLflow writes run artifacts under ./mlruns: keep them in the temporary store
status=0
"$bench" run --quick --tracking-uri "$uri" --experiment "$experiment" "$@" | tee "$store/run.txt" || status=$?
# Exit code 1 means some trials failed: they belong in the results (tabled with their reason). Worse is fatal.
if [ "$status" -gt 1 ]; then
    echo "regenerate.sh: bench run exited with $status; results/ left unchanged" >&2
    exit "$status"
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
summary="$(tail -n 1 "$store/run.txt")"
summary="${summary%%  (experiment*}" # the temporary store's path is noise

new="$store/results"
mkdir -p "$new/plots"
table=("$bench" table --tracking-uri "$uri" --experiment "$experiment")
"${table[@]}" --format md --output "$new/table.md" --plots "$new/plots"
"${table[@]}" --format csv --output "$new/table.csv"
"${table[@]}" --format html --output "$new/table.html"
"${table[@]}" --format latex --output "$new/table.tex"
"${table[@]}" --format json --output "$new/table.json"
python "$root/results/spread.py" "$uri" "$experiment" >"$new/spread.md"

{
    echo "# Results of the default suite"
    echo
    echo "Regenerate every file in this folder (tables, plots and this README) from the repository root with:"
    echo
    echo '```bash'
    echo "results/regenerate.sh"
    echo '```'
    echo
    echo "It runs \`bench run --quick\` into a fresh temporary MLflow store and derives each file from that store"
    echo "with \`bench table\`; nothing is typed by hand. The hardware and versions below are the run's own tags."
    echo
    echo "Generated $(date -u +%Y-%m-%dT%H:%MZ) by \`bench run --quick${*:+ $*}\`: $summary"
    echo
    echo "Load average (1, 5, 15 min) before the run: $load_before; after it: $load_after (2 cores; a figure"
    echo "taken beside another busy process is not comparable, see DESIGN.md, \"How benchbench times\")."
    echo "Plugins: $BENCHBENCH_PLUGINS."
    echo
    echo "The other pages in this folder are not from this run: each is made by its own script, run alone on a quiet"
    echo "machine, and a page with timings records in its own text the load average it was measured under."
    echo
    for script in "$root"/results/*.sh; do
        name="$(basename "$script" .sh)"
        if [ "$name" != regenerate ] && [ -f "$root/results/$name.md" ]; then
            echo "- [$name.md]($name.md): \`results/$name.sh\`"
        fi
    done
    echo
    echo "## Comparison table"
    echo
    cat "$new/table.md"
    echo
    echo "The same table: [table.csv](table.csv), [table.json](table.json), [table.html](table.html),"
    echo "[table.tex](table.tex) (booktabs)."
    echo
    echo "## Seed-to-seed spread of the step time"
    echo
    cat "$new/spread.md"
    echo
    echo "## Plots"
    echo
    for plot in "$new"/plots/*.png; do
        name="$(basename "$plot")"
        echo "![${name%.png}](plots/$name)"
        echo
    done
} >"$new/README.md"

mkdir -p "$out"
rm -rf "$out/plots" "$out"/table.* "$out/README.md" "$out/spread.md"
cp -r "$new"/. "$out"/
echo "regenerate.sh: wrote $out ($summary)"
