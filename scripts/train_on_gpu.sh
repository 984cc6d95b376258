#!/usr/bin/env bash
# Steps 1-4 (generate, train-vae, encode, train-rnn) on one CUDA machine within a time
# budget, then pack what the CPU-side stages need into OUT:
#   OUT/models.tar.gz.part-*  float32 weights + start latents (`mdnworld export-models --fp32`);
#                             unpack with `cat models.tar.gz.part-* | tar xz`, then
#                             `mdnworld from-shipped NEW_RUN --models models`
#   OUT/run.tar.gz            the run's logs, configs, stage costs and small files (no frames,
#                             latents or checkpoints); episodes.sha256 to compare the data with
#                             the same config generated elsewhere (generation is seeded)
#
#   usage: scripts/train_on_gpu.sh CONFIG RUN_DIR OUT SECONDS
#
# The five Ms train side by side on the one GPU, each stopping by early stopping or at the
# first epoch end after the time left (--max-minutes). V trains its full epochs.
set -euo pipefail
config=$1 run=$2 out=$3 budget=$4
start=$(date +%s)
dev=${DEVICE:-cuda}
mdn() { "${PYTHON:-python3}" -m mdnworld "$@"; }
left() { echo $((budget - ($(date +%s) - start))); }
mkdir -p "$out"

mdn generate "$run" --config "$config"
mdn train-vae "$run" --config "$config" --device "$dev" --prefetch 4
mdn encode "$run" --config "$config" --device "$dev"

models=$("${PYTHON:-python3}" -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb')).get('rnn', {}).get('models', 1))" "$config")
secs=$(($(left) - 90))  # leaves an epoch's time and the packing
if ((secs > 60)); then
  minutes=$("${PYTHON:-python3}" -c "print($secs / 60)")
  echo "train-rnn: $models models side by side, at most $minutes minutes each"
  pids=()
  for ((i = 0; i < models; i++)); do
    timeout $((secs + 60)) "${PYTHON:-python3}" -m mdnworld train-rnn "$run" --config "$config" \
      --device "$dev" --threads 2 --model-index "$i" --models 1 --max-minutes "$minutes" \
      >"$run/train_rnn_$i.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || echo "a train-rnn process ended with status $?"; done
  tail -n 3 "$run"/train_rnn_*.log
else
  echo "train-rnn: skipped, only $(left) s left"
fi

(cd "$run" && sha256sum episodes/ep_*.npz >episodes.sha256)
if mdn export-models "$run" "$out/models" --fp32; then
  tar -C "$out" -cz models | split -b 15M - "$out/models.tar.gz.part-"
  rm -r "$out/models"
fi
unfinished=$(cd "$run" && for d in rnn/model_*; do [[ -e $d/model.safetensors ]] || echo "$d"; done)
if [[ -n $unfinished ]]; then  # their best epoch so far, to finish elsewhere
  (cd "$run" && tar -cz vae/model.* $(for d in $unfinished; do ls $d/best.* $d/checkpoint.json 2>/dev/null; done)) |
    split -b 15M - "$out/unfinished.tar.gz.part-"
fi
tar -C "$run" -cz --exclude='episodes/ep_*' --exclude='latents/ep_*' --exclude='*.safetensors' \
  . >"$out/run.tar.gz"
echo "train_on_gpu: done in $(($(date +%s) - start)) s"
