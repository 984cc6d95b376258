#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issues 19 and 20), in the device tool's $OUT:
#   1. benchmarks/batched_rnn.py --device cuda: five Ms one after another vs one BatchedMDNRNN
#      (issue 20's target: >= 120k windows/s for the five), then train-rnn's step with
#      rnn.compile = "on" (whether "auto" should compile on CUDA too), ~2 minutes;
#   2. scripts/train_on_gpu.sh on CONFIG (default configs/sharp.toml: generate with truth, V 3
#      epochs, encode, the five Ms side by side to early stopping or the time left), packed into
#      $OUT/NAME (NAME: the config file's stem). configs/paper.toml needs more than one session:
#      its V's 10 epochs took 5.6 min on an H200.
#   3. benchmarks/gpu.py --device cuda: V's trainer beside its bare loop, and the minutes of each
#      stage of step 2's run (issue 20: steps 1-4 <= 5 min, trainer >= 1.0x the bare loop).
#
# The machine has python3 with torch, numpy, scipy, matplotlib, tqdm, imageio, safetensors,
# tensorboard, opencv; not vizdoom, gymnasium, cma or imageio-ffmpeg. Before the call, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 -d .whl vizdoom gymnasium cma farama-notifications \
#       cloudpickle imageio-ffmpeg
# then run (device tool, carry [".whl"]):  bash scripts/gpu_session.sh 540 [CONFIG]
# and afterwards `mdnworld from-shipped NEW_RUN --models models` from $OUT/NAME's parts.
set -euo pipefail
budget=${1:-540}
config=${2:-configs/sharp.toml}
name=$(basename "$config" .toml)
out=${OUT:?the device tool sets OUT}
start=$(date +%s)
if [[ -d .whl ]]; then
  python3 -m pip install -q --no-index --no-deps .whl/*.whl
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 benchmarks/batched_rnn.py --device cuda --seconds 3 2>&1 | tail -n 8 | tee -a "$out/gpu.txt"
python3 benchmarks/batched_rnn.py --device cuda --seconds 3 --compile 2>&1 | tail -n 8 \
  | tee -a "$out/gpu.txt"
cp benchmarks/results/batched_rnn_cuda.json benchmarks/results/batched_rnn_compile_cuda.json "$out/"
left=$((budget - ($(date +%s) - start) - 60))  # 60 s for benchmarks/gpu.py at the end
DEVICE=cuda PYTHON=python3 scripts/train_on_gpu.sh "$config" "/tmp/$name" "$out/$name" \
  "$left" 2>&1 | grep -v '\r' | tail -n 40 | tee -a "$out/gpu.txt"
python3 benchmarks/gpu.py --device cuda --run "/tmp/$name" --out "$out/gpu_cuda.json" 2>&1 \
  | tail -n 12 | tee -a "$out/gpu.txt"
