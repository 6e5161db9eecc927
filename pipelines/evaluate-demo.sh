#!/usr/bin/env bash
# Few-shot evaluation on the synthetic demo world: `cropmeta synth` writes the world, then
# `cropmeta evaluate` uses its catalog split — meta-train on the 3 sources (brandenburg, beauce,
# mazovia), adapt to each of the 2 targets (poltava, nebraska) beside the baselines on the same
# K-shot draws — and writes $OUT/report.md, results.json and figures/ (with a map of each target).
#
# Usage: bash pipelines/evaluate-demo.sh [extra `cropmeta evaluate` arguments]
# Time on the 2-core machine: full protocol (maml + protonet, K = 1 2 5 10 20, 5 draws, 300
# iterations, 2 folds) ≈ 5 min; the tiny check
# `SCALE=tiny ITERATIONS=5 SEEDS=1 SHOTS=1 LEARNERS=protonet` ≈ 20 s.
# All 11 learners: LEARNERS=all (adds ≈ 6 min of meta-training).
# Environment (defaults in brackets): OUT [eval-out/demo], SCALE [demo; `tiny` is the test
# world, a few seconds to write], SEED (also the world's seed), ITERATIONS, SEEDS, SHOTS,
# LEARNERS, ENCODER, TASK_WAYS/TASK_SHOTS/TASK_QUERIES [5/5/10; tiny world: 4/3/4], CROPMETA
# (see pipelines/_evaluate.sh). Shrink it with SCALE, ITERATIONS, SEEDS, SHOTS and LEARNERS.
set -euo pipefail
source "$(dirname "$0")/_evaluate.sh"
OUT=${OUT:-eval-out/demo}
SCALE=${SCALE:-demo}
if [[ $SCALE == tiny ]]; then # the tiny world's regions cannot fill 5-way 5+10 tasks
  TASK_WAYS=${TASK_WAYS:-4} TASK_SHOTS=${TASK_SHOTS:-3} TASK_QUERIES=${TASK_QUERIES:-4}
fi

# The world is written once per seed and scale; a new one makes earlier region datasets stale.
stamp="seed=$SEED scale=$SCALE"
if [[ -f $OUT/world/catalog.yaml && $(cat "$OUT/world.stamp" 2>/dev/null) == "$stamp" ]]; then
  echo "$(basename "$0"): reusing $OUT/world ($stamp)"
else
  rm -rf "$OUT/regions" "$OUT/world.stamp"
  mkdir -p "$OUT"
  "${cropmeta[@]}" synth --out "$OUT/world" --seed "$SEED" --scale "$SCALE"
  echo "$stamp" >"$OUT/world.stamp"
fi
# `cropmeta evaluate` fills $OUT in place and its first run marks it as an evaluation folder;
# until then $OUT holds only what this script wrote (the world and its stamp): --overwrite
# lets the evaluation use it (nothing of it is replaced: an evaluation never removes files).
if [[ ! -f $OUT/.cropmeta-output.json && -z $(ls -A "$OUT" | grep -vxE 'world|world\.stamp') ]]; then
  set -- --overwrite "$@"
fi
evaluate --catalog "$OUT/world/catalog.yaml" "$@"
