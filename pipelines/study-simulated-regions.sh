#!/usr/bin/env bash
# Simulated regions (task augmentation) on or off, chosen on meta-validation: runs one
# evaluation pipeline twice into $OUT/off and $OUT/on (the second with `--task-shift-days
# $SHIFT_DAYS --task-gain $GAIN --task-offset $OFFSET`), then benchmarks/augmentation_study.py
# prints both runs side by side with the best baseline and the (learner, run) pair that
# meta-validation picks over all runs, and draws $OUT/simulated-regions.png.
# docs/studies/simulated-regions-and-class-heads.md ("Simulated regions on the demo world") is
# this study with LEARNERS=all SHOTS=5. With HEADS="shared classes" the gradient learners that
# have class heads (maml fomaml anil metasgd alfa timl among LEARNERS) run twice more with
# `--set head_init=classes`, into $OUT/classes-off and $OUT/classes-on, and join the choice.
#
# Usage: bash pipelines/study-simulated-regions.sh [PIPELINE [extra `cropmeta evaluate` args]]
#   PIPELINE: evaluate-demo.sh (default) or another pipelines/evaluate-*.sh
# Time: twice the pipeline's per head setting (demo world, LEARNERS=all SHOTS=5: ≈ 2 × 10 min;
# class heads ≈ 2 × 6 min more).
# Environment (defaults in brackets): OUT [eval-out/simulated-regions], SHIFT_DAYS [45],
# GAIN [0.1], OFFSET [0.1], HEADS [shared], and every variable of the pipeline (LEARNERS,
# SHOTS, SEEDS, ...; see pipelines/_evaluate.sh). A rerun reuses the finished models of all runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pipeline=${1:-evaluate-demo.sh}
shift || true
if [[ ! -f $here/$pipeline ]]; then
  echo "$(basename "$0"): no pipeline $here/$pipeline" >&2
  exit 2
fi
if [[ -n ${TRAIN_SEEDS:-} ]]; then # augmentation_study.py reads one run per setting
  echo "$(basename "$0"): TRAIN_SEEDS is for a single pipeline, not this study; unset it" >&2
  exit 2
fi
OUT=${OUT:-eval-out/simulated-regions}
SHIFT_DAYS=${SHIFT_DAYS:-45} GAIN=${GAIN:-0.1} OFFSET=${OFFSET:-0.1}
read -ra cropmeta <<<"${CROPMETA:-cropmeta}"
# the Python next to the cropmeta command (its environment has matplotlib), else python3
python=$(dirname "$(command -v "${cropmeta[0]}")")/python
[[ -x $python ]] || python=python3

HEADS=${HEADS:-shared}
all="maml fomaml anil metasgd reptile alfa timl protonet matching relation snail"
learners=${LEARNERS:-maml protonet}
[[ $learners == all ]] && learners=$all
simulated=(--task-shift-days "$SHIFT_DAYS" --task-gain "$GAIN" --task-offset "$OFFSET")
# the learners of each head setting, all checked before the first run
declare -A chosen
for heads in $HEADS; do
  case $heads in
    shared) chosen[$heads]=$learners ;;
    classes)
      chosen[$heads]=""
      for x in $learners; do
        [[ " maml fomaml anil metasgd alfa timl " == *" $x "* ]] && chosen[$heads]+=" $x"
      done
      if [[ -z ${chosen[$heads]// /} ]]; then
        echo "$(basename "$0"): no learner of [$learners] has class heads" >&2
        exit 2
      fi
      ;;
    *) echo "$(basename "$0"): HEADS takes shared and classes, not $heads" >&2 && exit 2 ;;
  esac
done
# seed_run DIR: a run's folder that starts with the first run's world and region datasets (and
# its marker), so the data are made and preprocessed once for the whole study
first=""
seed_run() {
  local part
  [[ -z $first || -e $1 ]] && return 0
  mkdir -p "$1"
  for part in world world.stamp regions .cropmeta-output.json; do
    if [[ -e $first/$part ]]; then cp -r "$first/$part" "$1/"; fi
  done
}
runs=()
for heads in $HEADS; do
  prefix="" settings=()
  [[ $heads == classes ]] && prefix="classes-" settings=(--set head_init=classes)
  seed_run "$OUT/${prefix}off"
  LEARNERS=${chosen[$heads]} OUT="$OUT/${prefix}off" bash "$here/$pipeline" "${settings[@]}" "$@"
  first=${first:-$OUT/${prefix}off}
  seed_run "$OUT/${prefix}on"
  LEARNERS=${chosen[$heads]} OUT="$OUT/${prefix}on" bash "$here/$pipeline" "${simulated[@]}" \
    "${settings[@]}" "$@"
  runs+=("${prefix}off=$OUT/${prefix}off" "${prefix}on=$OUT/${prefix}on")
done
"$python" "$here/../benchmarks/augmentation_study.py" "${runs[@]}" \
  --shots "${SHOTS%% *}" --png "$OUT/simulated-regions.png" | tee "$OUT/study.md"
