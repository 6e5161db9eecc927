# Shared by pipelines/evaluate-*.sh (sourced, not run): the environment's protocol settings and
# the `cropmeta evaluate` call. Every variable has the full protocol as its default:
#   OUT         output folder (report.md/.html, results.json, figures/, regions/, models/)
#   SEED        seed of meta-training and of the first support/query draw        [0]
#   ITERATIONS  meta-training iterations per learner and fold                    [300]
#   SEEDS       support/query draws per K                                        [5]
#   TRAIN_SEEDS training seeds to pool, space-separated (each replaces SEED for meta-training and
#               the draws): one evaluation per seed in $OUT/seed-S, then
#               benchmarks/seed_pool.py over them into $OUT/pooled.md               [unset: one run]
#   SHOTS       labelled samples per class, space-separated                      [1 2 5 10 20]
#   LEARNERS    meta-learners, space-separated, or `all` (the 11 below)         [maml protonet]
#   ENCODER     temporal encoder: tempcnn, lstm, transformer, ltae              [tempcnn]
#   TASK_WAYS, TASK_SHOTS, TASK_QUERIES  meta-training task shape       [cropmeta's: 5, 5, 10]
#   FOREST_TREES trees of every random forest baseline                         [cropmeta's: 300]
#   CROPMETA    the cropmeta command                                             [cropmeta]
# Arguments given to a pipeline are passed on to `cropmeta evaluate` (e.g. --target NAME).
# The times in the pipelines' headers are extrapolated from runs with one draw at K = 1 and 20
# (300 iterations, 1 torch thread, 2026-11-27, machine shared): meta-training takes 60-90 s for
# maml (with the baselines' source classifier) and 6-10 s for protonet, once per distinct set
# of sources (folds with the same sources share the models), and a draw 2-4 s per fold. All
# 11 learners take ≈ 7 min of meta-training (docs/studies/few-shot-evaluation.md, demo world).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared_data="$repo/../shared/data" # where data_catalog/shared-data.yaml's paths point
read -ra cropmeta <<<"${CROPMETA:-cropmeta}"
SEED=${SEED:-0}
ITERATIONS=${ITERATIONS:-300}
SEEDS=${SEEDS:-5}
SHOTS=${SHOTS:-1 2 5 10 20}
LEARNERS=${LEARNERS:-maml protonet}
# every registered learner (cropmeta.learners.names.ALGORITHMS; tests/end_to_end/test_pipelines.py checks)
all_learners="maml fomaml anil metasgd reptile alfa timl protonet matching relation snail"
if [[ $LEARNERS == all ]]; then LEARNERS=$all_learners; fi
ENCODER=${ENCODER:-tempcnn}

if ! command -v "${cropmeta[0]}" >/dev/null; then
  echo "$(basename "$0"): '${cropmeta[0]}' not found; install cropmeta or set CROPMETA" >&2
  exit 2
fi

# require_data DIR...: stop (exit 2, one line) unless ../shared/data/DIR exists for each DIR.
require_data() {
  local d
  for d in "$@"; do
    if [[ ! -d "$shared_data/$d" ]]; then
      echo "$(basename "$0"): skipped, $shared_data/$d not found (no shared data here)" >&2
      exit 2
    fi
  done
}

# evaluate ARGS...: `cropmeta evaluate --out $OUT` with the settings above and ARGS; with
# TRAIN_SEEDS, once per training seed and pooled (the region datasets prepared once).
evaluate() {
  if [[ -z ${TRAIN_SEEDS:-} ]]; then
    evaluate_once "$OUT" "$SEED" "$@"
    return
  fi
  local s first="" dirs=() python
  for s in $TRAIN_SEEDS; do
    if [[ -n $first && ! -d $OUT/seed-$s/regions ]]; then
      # an evaluation folder that starts with the first run's region datasets (and its marker)
      mkdir -p "$OUT/seed-$s" && cp -r "$first/regions" "$first/.cropmeta-output.json" "$OUT/seed-$s/"
    fi
    evaluate_once "$OUT/seed-$s" "$s" "$@"
    first=${first:-$OUT/seed-$s}
    dirs+=("$OUT/seed-$s")
  done
  python=$(dirname "$(command -v "${cropmeta[0]}")")/python # cropmeta's own environment
  [[ -x $python ]] || python=python3
  if ! "$python" "$repo/benchmarks/seed_pool.py" "${dirs[@]}" >"$OUT/pooled.md.tmp"; then
    rm -f "$OUT/pooled.md.tmp"
    return 1
  fi
  mv "$OUT/pooled.md.tmp" "$OUT/pooled.md"
  echo "$(basename "$0"): pooled over training seeds [$TRAIN_SEEDS]: $OUT/pooled.md"
}

# evaluate_once OUT SEED ARGS...: one `cropmeta evaluate` run.
evaluate_once() {
  local out=$1 seed=$2 args=() x start=$SECONDS
  shift 2
  for x in $LEARNERS; do args+=(--learner "$x"); done
  for x in $SHOTS; do args+=(--shots "$x"); done
  if [[ -n ${TASK_WAYS:-} ]]; then args+=(--task-ways "$TASK_WAYS"); fi
  if [[ -n ${TASK_SHOTS:-} ]]; then args+=(--task-shots "$TASK_SHOTS"); fi
  if [[ -n ${TASK_QUERIES:-} ]]; then args+=(--task-queries "$TASK_QUERIES"); fi
  if [[ -n ${FOREST_TREES:-} ]]; then args+=(--forest-trees "$FOREST_TREES"); fi
  echo "$(basename "$0"): learners [$LEARNERS], K [$SHOTS], $SEEDS draws," \
    "$ITERATIONS iterations, seed $seed -> $out"
  "${cropmeta[@]}" evaluate --out "$out" --seeds "$SEEDS" --iterations "$ITERATIONS" \
    --encoder "$ENCODER" --seed "$seed" "${args[@]}" "$@"
  echo "$(basename "$0"): done in $((SECONDS - start)) s; report: $out/report.md"
}
