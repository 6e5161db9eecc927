#!/usr/bin/env bash
# Few-shot evaluation from Mato Grosso to the Brazilian Amazon soy rotations: meta-train on the
# Mato Grosso points (../shared/data/mato-grosso-modis, sits' 9 classes) and adapt to the
# published test split of brazilian-amazon (../shared/data/brazilian-amazon-ndvi, 5 classes,
# 500 series each), every learner beside the baselines on the same K-shot draws. Both are MODIS
# on the same September-August 16-day grid (23 steps from day 257). Writes $OUT/report.md,
# results.json and figures/.
#
# Bands: the Amazon series are NDVI only, and a model reads only the bands it was trained on,
# so the source is the catalog's `mato-grosso-ndvi` entry (the Mato Grosso table, NDVI alone).
# Classes (data_catalog/taxonomy.yaml): 3 of the 5 Amazon classes are Mato Grosso classes
# (soy_millet, soy_corn, soy_cotton); soybean and cotton alone are new to the learners, which
# adapt to any classes; source_only can only predict the 3 known ones.
#
# Usage: bash pipelines/evaluate-mato-grosso.sh [extra `cropmeta evaluate` arguments]
# Time on the 2-core machine: full protocol (maml + protonet, K = 1 2 5 10 20, 5 draws, 300
# iterations) ≈ 3 min; the tiny check `ITERATIONS=5 SEEDS=1 SHOTS=1 LEARNERS=protonet`
# ≈ 11 s.
# All 11 learners: LEARNERS=all (adds ≈ 6 min of meta-training).
# Environment (defaults in brackets): OUT [eval-out/mato-grosso], SEED, ITERATIONS, SEEDS, SHOTS,
# LEARNERS, ENCODER, TASK_WAYS/TASK_SHOTS/TASK_QUERIES, CROPMETA (see pipelines/_evaluate.sh).
# Shrink it with ITERATIONS, SEEDS, SHOTS and LEARNERS.
# Exits 2 with one line when the two data sets are not in ../shared/data next to the repository.
set -euo pipefail
source "$(dirname "$0")/_evaluate.sh"
OUT=${OUT:-eval-out/mato-grosso}
require_data mato-grosso-modis brazilian-amazon-ndvi

evaluate --catalog "$repo/data_catalog/shared-data.yaml" --region mato-grosso-ndvi \
    --region brazilian-amazon-test --target brazilian-amazon-test "$@"
