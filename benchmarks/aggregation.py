"""Polygon aggregation speed: cropmeta's field statistics vs exactextract and rasterstats.

All three compute the mean of every field for every band of every date of one large synthetic
tile (default 2048 × 2048 px, 12 dates × 10 bands). cropmeta also masks clouds from SCL and
applies scale/offset; the others get the same raw GeoTIFFs. exactextract and rasterstats are
timed on a random subset of fields (they are slow) and reported as fields per second.

Setup (benchmark-only packages): .venv/bin/pip install exactextract rasterstats
Run:   .venv/bin/python benchmarks/aggregation.py --tile-size 2048 --dates 12 --subset 150
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import geopandas as gpd

from cropmeta.catalog import load_catalog
from cropmeta.ingest.aggregate import field_statistics
from cropmeta.ingest.prepare import Preparation
from cropmeta.ingest.preprocess import burn_fields
from cropmeta.ingest.sources.per_date import open_tiles
from cropmeta.synth import make_world


def make_tile(root: Path, size: int, n_dates: int, seed: int) -> tuple[Path, Path]:
    catalog = load_catalog(
        make_world(root / "w", seed=seed, regions=["brandenburg"], tile_size=size)
    )
    entry = catalog.regions[0]
    tiles = catalog.path(entry.tiles)
    keep = root / "tiles"
    keep.mkdir()
    for path in sorted(tiles.glob("*.tif"))[:n_dates]:
        (keep / path.name).symlink_to(path)
    return keep, catalog.path(entry.labels)


def time_cropmeta(tiles: Path, fields: gpd.GeoDataFrame) -> float:
    stack = open_tiles(tiles)
    prep = Preparation(bands=[b for b in stack.band_names if b != "SCL"])
    start = time.perf_counter()
    ids = burn_fields(fields, stack)
    field_statistics(stack, ids, len(fields), prep, "mean")
    return time.perf_counter() - start


def time_exactextract(tiles: Path, fields: gpd.GeoDataFrame) -> float:
    from exactextract import exact_extract

    start = time.perf_counter()
    for path in sorted(tiles.glob("*.tif")):
        exact_extract(str(path), fields, "mean", output="pandas")
    return time.perf_counter() - start


def time_rasterstats(tiles: Path, fields: gpd.GeoDataFrame) -> float:
    from rasterstats import zonal_stats

    start = time.perf_counter()
    for path in sorted(tiles.glob("*.tif")):
        for band in range(1, 11):
            zonal_stats(fields, str(path), stats=["mean"], band=band)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=2048)
    parser.add_argument("--dates", type=int, default=12)
    parser.add_argument("--subset", type=int, default=150, help="fields for the slow tools")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tiles, labels = make_tile(Path(tmp), args.tile_size, args.dates, args.seed)
        fields = gpd.read_file(labels)
        subset = fields.sample(min(args.subset, len(fields)), random_state=args.seed)
        print(f"tile {args.tile_size}² px, {args.dates} dates × 10 bands, {len(fields)} fields")
        rates: dict[str, list[float]] = {"cropmeta": [], "exactextract": [], "rasterstats": []}
        for _ in range(args.repeats):
            rates["cropmeta"].append(len(fields) / time_cropmeta(tiles, fields))
            rates["exactextract"].append(len(subset) / time_exactextract(tiles, subset))
            rates["rasterstats"].append(len(subset) / time_rasterstats(tiles, subset))
        median = {k: statistics.median(v) for k, v in rates.items()}
        for name, rate in median.items():
            runs = ", ".join(f"{r:.1f}" for r in rates[name])
            print(f"{name:>13}: {rate:9.1f} fields/s (median; runs {runs})")
        fastest_other = max(median["exactextract"], median["rasterstats"])
        print(
            f"ratio cropmeta / fastest of exactextract, rasterstats: "
            f"{median['cropmeta'] / fastest_other:.1f}x"
        )


if __name__ == "__main__":
    main()
