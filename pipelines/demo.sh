#!/usr/bin/env bash
# The demo chain as explicit CLI steps (what `cropmeta demo` does in one call).
# Usage: bash pipelines/demo.sh [OUT_DIR] [SEED]
set -euo pipefail
out=${1:-demo-out}
seed=${2:-0}
cropmeta synth --out "$out/world" --seed "$seed"
for region in brandenburg beauce mazovia poltava nebraska; do
  cropmeta preprocess --catalog "$out/world/catalog.yaml" --region "$region" \
    --out "$out/regions/$region.zarr" --seed "$seed"
done
cropmeta meta-train --region "$out/regions/brandenburg.zarr" --region "$out/regions/beauce.zarr" \
  --region "$out/regions/mazovia.zarr" --algorithm maml --encoder tempcnn \
  --out "$out/models/maml-tempcnn" --seed "$seed"
for target in poltava nebraska; do
  cropmeta adapt --model "$out/models/maml-tempcnn" --region "$out/regions/$target.zarr" \
    --shots 5 --out "$out/models/adapted-$target" --seed "$seed"
done
cropmeta map --model "$out/models/adapted-poltava" --tiles "$out/world/poltava/tiles" \
  --out "$out/map-poltava.tif" --seed "$seed"
