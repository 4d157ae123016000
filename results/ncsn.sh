#!/usr/bin/env bash
# NCSN's toy result (Song & Ermon 2019, section 3.2) from scores that `bench run` trains: on ncsn-mixture,
# 0.8 N((5,5), I) + 0.2 N((-5,-5), I), the share of samples nearest the 0.8 mode (mode_weights.share_0) for
#   denoising-multiscale (NCSN's ladder, 20 -> 1) sampled with annealed Langevin, plain Langevin and the reverse SDE;
#   diffusion-ve (sigma 20 -> 0.1) sampled with the reverse SDE and annealed Langevin.
# Writes results/ncsn.md (RESULTS_DIR=path to write elsewhere); extra arguments go to every `bench run`
# (e.g. `--steps 200` for a smoke run). Publish only from a quiet machine (see DESIGN.md: check `uptime`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${RESULTS_DIR:-$root/results}"
bench="${BENCH:-$(command -v bench || echo "$root/.venv/bin/bench")}"
store="$(mktemp -d "${TMPDIR:-/tmp}/bench-ncsn.XXXXXX")"
trap 'rm -rf "$store"' EXIT
uri="sqlite:///$store/mlflow.db"
cd "$store"

multiscale="denoising-multiscale:sigma_min=1,sigma_max=20,n_sigmas=10"
ve="diffusion-ve:sigma_min=0.1,sigma_max=20"
common=(--tracking-uri "$uri" -d ncsn-mixture -b torch -b jax --seeds 3 --steps 5000 --n-samples 1280)
run() { # experiment, sampler spec, objectives...
    local experiment="$1" sampler="$2"
    shift 2
    local objectives=()
    for objective in "$@"; do objectives+=(-o "$objective"); done
    status=0
    "$bench" run "${common[@]}" --experiment "$experiment" --sampler "$sampler" "${objectives[@]}" "${EXTRA[@]}" \
        >"$store/$experiment.txt" || status=$?
    if [ "$status" -gt 1 ]; then
        echo "ncsn.sh: bench run ($experiment) exited with $status" >&2
        exit "$status"
    fi
}
EXTRA=("$@")
run annealed "annealed-langevin" "$multiscale" "$ve"
run plain "langevin:eps=0.1,n_steps=1000" "$multiscale"
run reverse-sde "reverse-sde:n_steps=500" "$multiscale" "$ve"

{
    echo "# NCSN's toy result from learned scores"
    echo
    echo "Regenerate with \`results/ncsn.sh\`${*:+ (this file: \`results/ncsn.sh $*\`)}. Generated $(date -u +%Y-%m-%dT%H:%MZ)."
    echo "ncsn-mixture is 0.8 N((5,5), I) + 0.2 N((-5,-5), I); share_0 is the share of 1280 samples nearest the"
    echo "0.8 mode, mode_weights the largest |share - weight|. Song & Ermon (2019): annealed Langevin recovers 0.8,"
    echo "plain Langevin keeps roughly the start's split. Every model below was trained by \`bench run\`"
    echo "(5000 steps and 3 seeds unless the arguments above override them, the default MLP); the samplers start"
    echo "from the uniform box around the training data."
    for experiment in annealed plain reverse-sde; do
        echo
        echo "## sampler: $experiment"
        echo
        "$bench" table --tracking-uri "$uri" --experiment "$experiment" \
            --metric mode_weights.share_0 --metric mode_weights --metric perturbed_fisher_divergence
    done
} >"$store/ncsn.md"
mkdir -p "$out"
cp "$store/ncsn.md" "$out/ncsn.md"
echo "ncsn.sh: wrote $out/ncsn.md"
