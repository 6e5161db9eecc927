#!/usr/bin/env bash
# Simulated regions (task augmentation) on or off, chosen on meta-validation: runs one
# evaluation pipeline twice into $OUT/off and $OUT/on (the second with
# `--task-shift-days $SHIFT_DAYS --task-gain $GAIN --task-offset $OFFSET`), then
# benchmarks/augmentation_study.py prints both runs side by side with the best baseline and the
# (learner, augmentation) pair that meta-validation picks over both, and draws
# $OUT/simulated-regions.png. BENCHMARKS.md ("Simulated regions on the demo world") is this
# study with LEARNERS=all SHOTS=5.
#
# Usage: bash pipelines/study-simulated-regions.sh [PIPELINE [extra `cropmeta evaluate` args]]
#   PIPELINE: evaluate-demo.sh (default) or another pipelines/evaluate-*.sh
# Time: twice the pipeline's (demo world, LEARNERS=all SHOTS=5: ≈ 2 × 10 min).
# Environment (defaults in brackets): OUT [eval-out/simulated-regions], SHIFT_DAYS [45],
# GAIN [0.1], OFFSET [0.1], and every variable of the pipeline (LEARNERS, SHOTS, SEEDS, ...;
# see pipelines/_evaluate.sh). A rerun reuses the finished models of both runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pipeline=${1:-evaluate-demo.sh}
shift || true
if [[ ! -f $here/$pipeline ]]; then
  echo "$(basename "$0"): no pipeline $here/$pipeline" >&2
  exit 2
fi
OUT=${OUT:-eval-out/simulated-regions}
SHIFT_DAYS=${SHIFT_DAYS:-45} GAIN=${GAIN:-0.1} OFFSET=${OFFSET:-0.1}
read -ra cropmeta <<<"${CROPMETA:-cropmeta}"
# the Python next to the cropmeta command (its environment has matplotlib), else python3
python=$(dirname "$(command -v "${cropmeta[0]}")")/python
[[ -x $python ]] || python=python3

OUT="$OUT/off" bash "$here/$pipeline" "$@"
OUT="$OUT/on" bash "$here/$pipeline" --task-shift-days "$SHIFT_DAYS" --task-gain "$GAIN" \
  --task-offset "$OFFSET" "$@"
"$python" "$here/../benchmarks/augmentation_study.py" "$OUT/off" "$OUT/on" \
  --shots "${SHOTS%% *}" --png "$OUT/simulated-regions.png" | tee "$OUT/study.md"
