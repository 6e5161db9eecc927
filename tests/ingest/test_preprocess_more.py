"""preprocess: tables and several regions in parallel through the CLI, and more bad input."""

import json
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from checks import assert_one_line_error
from rasterio.crs import CRS


def test_long_table_cli(cli, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for sample in range(12):
        label = ["maize", "winter_wheat"][sample % 2]
        for day in range(70, 300, 12):
            date = pd.Timestamp("2023-01-01") + pd.Timedelta(days=day - 1)
            ndvi = 0.2 + 0.6 * np.exp(-(((day - (200 if label == "maize" else 130)) / 40) ** 2))
            rows.append((sample, label, date.date().isoformat(), ndvi + rng.normal(0, 0.02)))
    table = tmp_path / "series.csv"
    pd.DataFrame(rows, columns=["sample_id", "label", "date", "ndvi"]).to_csv(table, index=False)
    out = tmp_path / "t.zarr"
    res = cli("preprocess", "--table", table, "--out", out)
    assert res.exit_code == 0, res.output
    ds = xr.open_zarr(out)
    assert ds.sizes["sample"] == 12 and list(ds["band"].values) == ["ndvi"]
    assert set(ds["label"].values) == {"maize", "winter_wheat"}


def test_several_regions_in_parallel_match_one_by_one(cli, world, catalog, tmp_path):
    names = [r.name for r in catalog.targets()]
    args = [a for n in names for a in ("--region", n)]
    res = cli("preprocess", "--catalog", world, *args, "--out", tmp_path / "par", "--workers", "2")
    assert res.exit_code == 0, res.output
    for name in names:
        single = tmp_path / f"{name}.zarr"
        assert (
            cli("preprocess", "--catalog", world, "--region", name, "--out", single).exit_code == 0
        )
        a, b = xr.open_zarr(tmp_path / "par" / f"{name}.zarr"), xr.open_zarr(single)
        np.testing.assert_array_equal(a["x"].values, b["x"].values)


def test_several_regions_on_a_dask_cluster(world, catalog, tmp_path):
    from dask.distributed import LocalCluster

    from cropmeta.ingest.parallel import preprocess_regions

    names = [r.name for r in catalog.targets()]
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        paths = preprocess_regions(
            world, names, tmp_path / "dask", scheduler=cluster.scheduler_address
        )
    local = preprocess_regions(world, names, tmp_path / "local", workers=1)
    for name in names:
        np.testing.assert_array_equal(
            xr.open_zarr(paths[name])["x"].values, xr.open_zarr(local[name])["x"].values
        )


@pytest.fixture()
def copied(catalog, tmp_path):
    entry = catalog.targets()[0]
    tiles = tmp_path / "tiles"
    shutil.copytree(catalog.path(entry.tiles), tiles)
    return tiles, catalog.path(entry.labels), entry.label_column, sorted(tiles.glob("*.tif"))


def _rewrite(path, **changes):
    with rasterio.open(path) as src:
        profile, data, names = src.profile, src.read(), src.descriptions
    count = changes.pop("count", profile["count"])
    profile.update(count=count, **changes)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:count])
        dst.descriptions = names[:count]


def _run(cli, tiles, labels, col, out, *more):
    args = ("--tiles", tiles, "--labels", labels, "--label-column", col, "--out", out)
    return cli("preprocess", *args, *more)


def test_crs_differs_between_dates(cli, copied, tmp_path):
    tiles, labels, col, files = copied
    _rewrite(files[2], crs=CRS.from_epsg(32633))
    out = tmp_path / "r.zarr"
    assert_one_line_error(_run(cli, tiles, labels, col, out), out, files[2].name)


def test_band_count_differs_between_dates(cli, copied, tmp_path):
    tiles, labels, col, files = copied
    _rewrite(files[3], count=5)
    out = tmp_path / "r.zarr"
    assert_one_line_error(_run(cli, tiles, labels, col, out), out, files[3].name)


def test_unparseable_date(cli, copied, tmp_path):
    tiles, labels, col, files = copied
    files[0].rename(tiles / "S2_scene_without_a_date.tif")
    out = tmp_path / "r.zarr"
    assert_one_line_error(_run(cli, tiles, labels, col, out), out, "no acquisition date")


def test_all_masked_series(cli, copied, tmp_path):
    tiles, labels, col, files = copied
    for path in files:
        with rasterio.open(path, "r+") as dst:
            scl = dst.read(dst.count)
            dst.write(np.full_like(scl, 9), dst.count)  # cloud everywhere, every date
    out = tmp_path / "r.zarr"
    assert_one_line_error(_run(cli, tiles, labels, col, out), out, "masked")


def test_unknown_labels_are_refused_or_dropped_and_listed(cli, copied, tmp_path, caplog):
    tiles, labels, col, _ = copied
    fields = gpd.read_file(labels)
    fields.loc[fields.index[:3], col] = "Unobtainium"
    odd = tmp_path / "odd.gpkg"
    fields.to_file(odd, layer="fields")
    out = tmp_path / "r.zarr"
    assert_one_line_error(_run(cli, tiles, odd, col, out), out, "'Unobtainium' (3)")
    res = _run(cli, tiles, odd, col, out, "--drop-unknown")
    assert res.exit_code == 0, res.output
    summary = json.loads(xr.open_zarr(out).attrs["summary"])
    assert summary["labels"]["unknown_labels"] == {"Unobtainium": 3}
    assert "Unobtainium" in caplog.text


def test_quality_band_values_and_valid_range_are_recorded(cli, catalog, tmp_path):
    entry = catalog.targets()[0]
    base = [
        "preprocess",
        "--tiles",
        catalog.path(entry.tiles),
        "--labels",
        catalog.path(entry.labels),
        "--label-column",
        entry.label_column,
    ]
    default, clouds_only, ranged = tmp_path / "d.zarr", tmp_path / "c.zarr", tmp_path / "r.zarr"
    assert cli(*base, "--out", default).exit_code == 0
    res = cli(*base, "--out", clouds_only, "--quality-band", "SCL", "--mask-values", "8,9")
    assert res.exit_code == 0, res.output
    res = cli(*base, "--out", ranged, "--valid-range", "0", "0.45")
    assert res.exit_code == 0, res.output
    d, c, r = (xr.open_zarr(p) for p in (default, clouds_only, ranged))
    assert json.loads(c.attrs["preparation"])["invalid_classes"] == [8, 9]
    assert json.loads(r.attrs["preparation"])["valid_range"] == [0.0, 0.45]
    # fewer classes masked → more acquisitions count as valid; a tight range → fewer
    assert c["valid_fraction"].mean() > d["valid_fraction"].mean() > r["valid_fraction"].mean()


def test_meta_train_asks_for_more_samples_than_a_class_has(cli, regions, catalog, tmp_path):
    out = tmp_path / "m"
    res = cli(
        "meta-train",
        "--region",
        regions[catalog.sources()[0].name],
        "--out",
        out,
        "--shots",
        "500",
    )
    assert_one_line_error(res, out, "no region has 5 classes with 510 samples")
