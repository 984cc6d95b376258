#!/usr/bin/env bash
# The record of a trained run: the paper's analyses with both detector sets, the dream's gap to
# the game, and collect-results. Run it again after a stop: each analyze step reads back the
# dreams it already made with the same settings.
#
#   usage: scripts/paper_analyses.sh CONFIG RUN_DIR OUT [TRUTH_RUN] [-- COLLECT-RESULTS OPTIONS]
#   e.g.   scripts/paper_analyses.sh configs/sharp.toml runs/sharp results/sharp runs/sharp \
#            -- --beside paper=results/paper
#
# 1. B and C with the validated detectors -> OUT/detectors/validated_analyses/
# 2. A, B and C with the SPEC detectors (RUN_DIR/analysis/, whatever the config says: a config
#    such as sharp.toml that picks the validated set gets both sets laid out as paper.toml's)
# 3. benchmarks/dream_gap.py (fixed policies in the dream and the game; the done head's
#    calibration) -> OUT/tables/dream_gap.json; with TRUTH_RUN (episodes made with
#    `generate --truth`) also benchmarks/dream_fidelity.py for each detector set
#    (DREAM_GAP_ARGS: options for dream_gap.py, e.g. "--episodes 4 --rollouts 8")
# 4. mdnworld collect-results RUN_DIR OUT (its RESULTS.md puts --beside runs side by side)
set -euo pipefail
config=$1 run=${2%/} out=${3%/}
shift 3
truth=""
if [[ $# -gt 0 && $1 != -- ]]; then truth=$1; shift; fi
[[ $# -gt 0 ]] && shift  # the --; what follows goes to collect-results
mdn=${MDNWORLD:-mdnworld} py=${PYTHON:-python}
here=$(dirname "$0")/..
val=$out/detectors/validated_analyses
mkdir -p "$val" "$out/tables"

fidelity() {  # $1 = output file: dream vs real world-class rates of B's dreams as they are now
  # (episodes 900-1999 of the truth run: enough real frames late in episodes to time-match)
  if [[ -n $truth ]]; then
    $py "$here/benchmarks/dream_fidelity.py" "$run" --real "$truth" --real-episodes 900-1999 --out "$1"
  fi
}

for analysis in worlds-events committed; do
  $mdn analyze "$analysis" "$run" --config "$config" --set analyze.detectors=validated
done
cp "$run/analysis/worlds_events/results.json" "$val/worlds_events.json"
cp "$run/analysis/worlds_events/table.csv" "$val/worlds_events.csv"
cp "$run/analysis/committed/results.json" "$val/committed.json"
cp "$run/analysis/summary.md" "$val/summary.md"
fidelity "$val/dream_fidelity.json"

$mdn analyze all "$run" --config "$config" --set analyze.detectors=spec
fidelity "$out/tables/dream_fidelity.json"
$py "$here/benchmarks/dream_gap.py" "$run" ${DREAM_GAP_ARGS:-} --out "$out/tables/dream_gap.json"
$mdn collect-results "$run" "$out" "$@"
