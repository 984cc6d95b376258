#!/usr/bin/env bash
# World Models' temperature sweep: one controller per dream temperature tau, each trained in the
# dream of the same V and M (RUN_DIR's episodes, latents, vae and rnn are linked, not copied)
# and scored in the real game. Every step resumes where it stopped; run it again after a stop.
#
#   usage: scripts/tau_sweep.sh CONFIG RUN_DIR TAU [TAU ...] [-- TRAIN-CONTROLLER OPTIONS]
#   e.g.   scripts/tau_sweep.sh configs/paper.toml runs/paper 0.5 1.0 1.3 -- --generations 50
#
# Writes RUN_DIR-tau<TAU>/ per tau; then the record of all of them:
#   mdnworld controller-results RUN_DIR RUN_DIR-tau0.5 RUN_DIR-tau1.0 RUN_DIR-tau1.3 results/controller
set -euo pipefail
config=$1 run=${2%/}
shift 2
taus=()
while [[ $# -gt 0 && $1 != -- ]]; do taus+=("$1"); shift; done
[[ $# -gt 0 ]] && shift  # the --; what follows goes to every train-controller
for tau in "${taus[@]}"; do
  dir="$run-tau$tau"
  mkdir -p "$dir"
  for part in episodes latents vae rnn; do
    if [[ -e $run/$part && ! -e $dir/$part ]]; then ln -s "$(realpath "$run/$part")" "$dir/$part"; fi
  done
  "${MDNWORLD:-mdnworld}" train-controller "$dir" --config "$config" --tau "$tau" "$@"
  "${MDNWORLD:-mdnworld}" evaluate "$dir" --config "$config"
done
