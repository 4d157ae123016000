#!/usr/bin/env bash
# Regenerate results/downstream.md: for each objective, what its learned score does downstream (the MAP error
# ratio to the true prior, MAP PSNR on images, the anomaly AUC) next to its Fisher divergence, on gaussian, gmm
# and mnist (digit 9 held out as the outliers). Two sweeps into one temporary MLflow store, one table over both;
# nothing is typed by hand. Extra arguments go to both `bench run`s (e.g. `--steps 20 --seeds 1` for a smoke run).
# IMAGE_MODEL=conv trains the image sweep with the convolutional U-Net (default mlp: the exact objective's trace
# costs d network passes per example, which the MLP's tangent fast path makes affordable at d = 784).
# RESULTS_DIR=path writes somewhere else than results/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${RESULTS_DIR:-$root/results}"
bench="${BENCH:-$(command -v bench || echo "$root/.venv/bin/bench")}"
store="$(mktemp -d "${TMPDIR:-/tmp}/bench-downstream.XXXXXX")"
trap 'rm -rf "$store"' EXIT
uri="sqlite:///$store/mlflow.db"
experiment="downstream"
image_model="${IMAGE_MODEL:-mlp}"
runs=(--tracking-uri "$uri" --experiment "$experiment" --seeds 3 --steps 1000)

# The built-in plugins only: the results are about benchbench's own objectives (peers: results/audit.sh).
export BENCHBENCH_PLUGINS="${BENCHBENCH_PLUGINS:-objectives,torch,jax,datasets,metrics,samplers,executors}"
cd "$store" # MLflow writes run artifacts under ./mlruns: keep them in the temporary store
summaries=()
commands=()
for sweep in synthetic images; do
    if [ "$sweep" = synthetic ]; then
        args=(-o all -d gaussian:dim=16,cond=10 -d gmm:dim=4)
    else
        # exact included: the MLP's weight-cycle trace costs (depth - 2) width^3 a row, not d = 784 tangents.
        args=(-o all -d mnist:exclude_class=9 --model "$image_model" --seeds 2 --steps 500)
    fi
    commands+=("bench run ${runs[*]:4} ${args[*]}${*:+ $*}")
    status=0
    "$bench" run "${runs[@]}" "${args[@]}" "$@" | tee "$store/$sweep.txt" || status=$?
    if [ "$status" -gt 1 ]; then # 1: some trials failed, and they belong in the table with their reason
        echo "downstream.sh: bench run ($sweep) exited with $status; $out/downstream.md left unchanged" >&2
        exit "$status"
    fi
    summary="$(tail -n 1 "$store/$sweep.txt")"
    summaries+=("$sweep: ${summary%%  (experiment*}")
done

metrics=()
for metric in fisher_divergence sm_objective map_error_ratio map_error map_psnr_inpaint map_psnr_blur \
    anomaly_auc anomaly_auc.true_score; do
    metrics+=(--metric "$metric")
done
"$bench" table --tracking-uri "$uri" --experiment "$experiment" --all "${metrics[@]}" --format md \
    --output "$store/table.md"

{
    echo "# What the learned score does downstream"
    echo
    echo "Regenerate this file from the repository root with \`results/downstream.sh\` (it runs \`bench run\` into a"
    echo "fresh temporary MLflow store and derives the table with \`bench table\`; nothing is typed by hand)."
    echo
    echo "Generated $(date -u +%Y-%m-%dT%H:%MZ) (load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown))"
    echo "by these commands (later options override earlier ones):"
    for line in "${commands[@]}"; do
        echo "- \`$line\`"
    done
    echo
    echo "Trials:"
    for line in "${summaries[@]}"; do
        echo "- $line"
    done
    echo
    echo "Read each row left to right: does the objective with the best Fisher divergence (or held-out score-matching"
    echo "objective, on mnist) also give the best MAP estimate and the best anomaly detector?"
    echo
    echo "- map_error_ratio: MSE of the MAP estimate from a random projection to d/2 dimensions (noise 0.1 x the data"
    echo "  scale) with the learned score as the prior's gradient, divided by the true prior's MAP error on the same"
    echo "  problems (closed form on gaussian, the same solver with the true score on gmm). 1.0 = as good as the truth;"
    echo "  below 1 is possible where the MAP of the true prior is not the least-squares estimate (a mixture)."
    echo "- map_psnr_inpaint / map_psnr_blur (images): PSNR in dB of the MAP estimate (centre square missing;"
    echo "  Gaussian blur of 1 pixel), to compare with the observation's own PSNR logged as .observed."
    echo "- anomaly_auc: ROC AUC of ||s(x)|| on held-out data against outliers (the data widened 1.5x about its mean;"
    echo "  on mnist the held-out digit 9); anomaly_auc.true_score is the same detector with the true score."
    echo
    cat "$store/table.md"
} >"$store/downstream.md"

mkdir -p "$out"
cp "$store/downstream.md" "$out/downstream.md"
echo "downstream.sh: wrote $out/downstream.md"
