#!/usr/bin/env bash
# Few-shot evaluation on TiSeLaC (Reunion Island, Landsat 8 NDVI; ../shared/data/tiselac-ndvi):
# meta-train on the published train split (tiselac-train, 4,500 series, 9 classes) and adapt to
# the test split (tiselac-test, 5,000 series, classes unbalanced: 43 to 1,118 a class), every
# learner beside the baselines on the same K-shot draws. Writes $OUT/report.md, results.json and
# figures/.
#
# Both splits are sources in data_catalog/shared-data.yaml; `--target tiselac-test` holds the
# test split out and the fold's only source is tiselac-train. Both splits are the same island,
# year and 9 classes, so this measures how well a learner uses K labels of classes it has seen
# (source_only needs none), not transfer to a new region.
#
# Usage: bash pipelines/evaluate-tiselac.sh [extra `cropmeta evaluate` arguments]
# Time on the 2-core machine: full protocol (maml + protonet, K = 1 2 5 10 20, 5 draws, 300
# iterations) ≈ 3 min; the tiny check `ITERATIONS=5 SEEDS=1 SHOTS=1 LEARNERS=protonet`
# ≈ 17 s.
# All 11 learners: LEARNERS=all (adds ≈ 6 min of meta-training).
# Environment (defaults in brackets): OUT [eval-out/tiselac], SEED, ITERATIONS, SEEDS, SHOTS,
# LEARNERS, ENCODER, TASK_WAYS/TASK_SHOTS/TASK_QUERIES, CROPMETA (see pipelines/_evaluate.sh).
# Shrink it with ITERATIONS, SEEDS, SHOTS and LEARNERS.
# Exits 2 with one line when ../shared/data/tiselac-ndvi is not next to the repository.
set -euo pipefail
source "$(dirname "$0")/_evaluate.sh"
OUT=${OUT:-eval-out/tiselac}
require_data tiselac-ndvi

evaluate --catalog "$repo/data_catalog/shared-data.yaml" \
  --region tiselac-train --region tiselac-test --target tiselac-test "$@"
