#!/usr/bin/env bash
# World Models' temperature sweep: one controller per dream temperature tau, each trained in the
# dream of the same V and M (RUN_DIR's episodes, latents, vae and rnn are linked, not copied)
# and scored in the real game. Every step resumes where it stopped; run it again after a stop.
#
#   usage: scripts/tau_sweep.sh CONFIG RUN_DIR TAU [TAU ...]
#   e.g.   scripts/tau_sweep.sh configs/paper.toml runs/paper 0.5 1.0 1.3
#
# Writes RUN_DIR-tau<TAU>/ per tau; then the record of all of them:
#   mdnworld controller-results RUN_DIR RUN_DIR-tau0.5 RUN_DIR-tau1.0 RUN_DIR-tau1.3 results/controller
set -euo pipefail
config=$1 run=${2%/}
shift 2
for tau in "$@"; do
  dir="$run-tau$tau"
  mkdir -p "$dir"
  for part in episodes latents vae rnn; do
    if [[ -e $run/$part && ! -e $dir/$part ]]; then ln -s "$(realpath "$run/$part")" "$dir/$part"; fi
  done
  "${MDNWORLD:-mdnworld}" train-controller "$dir" --config "$config" --tau "$tau"
  "${MDNWORLD:-mdnworld}" evaluate "$dir" --config "$config"
done
