#!/usr/bin/env bash
# Few-shot evaluation on gee-tsda (Bailly et al., IEEE GRSL 2017; ../shared/data/gee-tsda-ndvi),
# the domains of data_catalog/shared-data.yaml: meta-train on the published source domain
# (gee-europe-2011, MODIS NDVI) and adapt to each of the four NDVI target domains in turn
# (gee-south-america-2011 = A, gee-north-america-2011 = B, gee-europe-2003 = C,
# gee-landsat-europe-2011 = D), every learner beside the baselines on the same K-shot draws;
# the report puts the published accuracies beside ours. Writes $OUT/report.md, results.json and
# figures/.
#
# Left out: gee-lai-europe-2011 (domain E) is leaf area index (m²/m²), another variable than
# the source's NDVI: a model meta-trained on NDVI cannot read it (`adapt` refuses: bands differ),
# and a heterogeneous-domain method (the README's SSMA/KEMA) would be needed to use it.
#
# Usage: bash pipelines/evaluate-gee-tsda.sh [extra `cropmeta evaluate` arguments,
#        e.g. --target gee-south-america-2011 for one fold]
# Time on the 2-core machine: full protocol (maml + protonet, K = 1 2 5 10 20, 5 draws, 300
# iterations, 4 folds) ≈ 8 min; the tiny check
# `ITERATIONS=5 SEEDS=1 SHOTS=1 LEARNERS=protonet` ≈ 25 s.
# All 11 learners: LEARNERS=all (adds ≈ 6 min of meta-training).
# Environment (defaults in brackets): OUT [eval-out/gee-tsda], SEED, ITERATIONS, SEEDS, SHOTS,
# LEARNERS, ENCODER, TASK_WAYS/TASK_SHOTS/TASK_QUERIES [5/5/5], CROPMETA (see
# pipelines/_evaluate.sh).
# Shrink it with ITERATIONS, SEEDS, SHOTS, LEARNERS or one --target.
# Exits 2 with one line when ../shared/data/gee-tsda-ndvi is not next to the repository.
set -euo pipefail
source "$(dirname "$0")/_evaluate.sh"
OUT=${OUT:-eval-out/gee-tsda}
# 5-way tasks of 5 + 5 series: the source's smallest classes have 11 and 14 series, 80 % of
# them for meta-training (the default 10 queries would leave only 3 classes eligible)
TASK_QUERIES=${TASK_QUERIES:-5}
require_data gee-tsda-ndvi

regions=()
for r in gee-europe-2011 gee-south-america-2011 gee-north-america-2011 gee-europe-2003 \
  gee-landsat-europe-2011; do
  regions+=(--region "$r")
done
evaluate --catalog "$repo/data_catalog/shared-data.yaml" "${regions[@]}" "$@"
