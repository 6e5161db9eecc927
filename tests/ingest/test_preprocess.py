"""`cropmeta preprocess` on the tiny world's real GeoTIFFs and GeoPackages."""

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import xarray as xr
from checks import assert_one_line_error

from cropmeta.ingest.dataset import open_region
from cropmeta.taxonomy import load_taxonomy


def test_region_dataset_schema(regions, catalog):
    entry = catalog.sources()[0]
    ds = open_region(regions[entry.name])
    assert ds["x"].dims == ("sample", "time", "band")
    assert list(ds["band"].values) == [
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B11",
        "B12",
    ]
    assert np.all(np.diff(ds["doy"].values) == 10)
    assert not np.isnan(ds["x"].values).any()
    with rasterio.open(next(catalog.path(entry.tiles).glob("*.tif"))) as src:
        assert rasterio.crs.CRS.from_wkt(ds.attrs["crs"]) == src.crs
    classes = json.loads(ds.attrs["classes"])
    names = {c["name"] for c in classes}
    assert names <= {c.name for c in load_taxonomy().classes} and len(names) >= 6
    for c in classes:  # shared code and name beside the region's own label names
        mine = ds["code"].values == c["code"]
        assert c["count"] == mine.sum() and c["local_names"] == sorted(
            set(ds["label"].values[mine])
        )
    np.testing.assert_allclose(ds["band_mean"].values, ds["x"].mean(("sample", "time")), rtol=1e-4)
    provenance = json.loads(ds.attrs["provenance"])
    assert provenance["versions"]["cropmeta"] and provenance["label_column"] == entry.label_column
    fields = gpd.read_file(catalog.path(entry.labels))
    assert set(ds["field_id"].values) <= set(fields["field_id"])
    assert set(ds["label"].values) <= set(fields[entry.label_column])
    summary = json.loads(ds.attrs["summary"])
    assert summary["samples"] == summary["fields_used"] == ds.sizes["sample"]


def test_clouds_are_masked_before_aggregation(world, catalog, tmp_path):
    """Without SCL masking, cloudy dates leak bright values into the field means."""
    from cropmeta.ingest.catalog_regions import preprocess_catalog_region

    entry = catalog.sources()[0]
    masked = preprocess_catalog_region(world, entry.name)
    assert (masked["valid_fraction"].values < 1).any()  # some acquisitions were cloudy
    blue = masked["x"].sel(band="B02").values
    assert np.nanpercentile(blue, 99) < 0.2  # no cloud-bright blue reflectance left

    unmasked = preprocess_catalog_region(world, entry.name, invalid_classes=[])
    assert np.nanpercentile(unmasked["x"].sel(band="B02").values, 99) > np.nanpercentile(blue, 99)


def test_preprocess_cli_writes_zarr(cli, catalog, tmp_path):
    entry = catalog.targets()[0]
    out = tmp_path / "t.zarr"
    res = cli(
        "preprocess",
        "--tiles",
        catalog.path(entry.tiles),
        "--labels",
        catalog.path(entry.labels),
        "--label-column",
        entry.label_column,
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    assert xr.open_zarr(out)["x"].sizes["sample"] > 10


def test_preprocess_is_deterministic(world, catalog, tmp_path):
    from cropmeta.ingest.catalog_regions import preprocess_catalog_region

    a = preprocess_catalog_region(world, catalog.targets()[1].name)
    b = preprocess_catalog_region(world, catalog.targets()[1].name)
    np.testing.assert_array_equal(a["x"].values, b["x"].values)


@pytest.fixture()
def target(catalog):
    e = catalog.targets()[0]
    return catalog.path(e.tiles), catalog.path(e.labels), e.label_column


def test_missing_tiles_folder(cli, target, tmp_path):
    _, labels, col = target
    out = tmp_path / "r.zarr"
    res = cli(
        "preprocess",
        "--tiles",
        tmp_path / "nope",
        "--labels",
        labels,
        "--label-column",
        col,
        "--out",
        out,
    )
    assert_one_line_error(res, out, "tile folder not found")


def test_missing_label_file(cli, target, tmp_path):
    tiles, _, col = target
    out = tmp_path / "r.zarr"
    res = cli(
        "preprocess",
        "--tiles",
        tiles,
        "--labels",
        tmp_path / "none.gpkg",
        "--label-column",
        col,
        "--out",
        out,
    )
    assert_one_line_error(res, out, "label file not found")


def test_wrong_label_column(cli, target, tmp_path):
    tiles, labels, _ = target
    out = tmp_path / "r.zarr"
    res = cli(
        "preprocess", "--tiles", tiles, "--labels", labels, "--label-column", "nope", "--out", out
    )
    assert_one_line_error(res, out, "label column 'nope' not found")


def test_empty_label_file(cli, target, tmp_path):
    tiles, labels, col = target
    empty = tmp_path / "empty.gpkg"
    gdf = gpd.read_file(labels)
    gdf.iloc[:0].to_file(empty, layer="fields")
    out = tmp_path / "r.zarr"
    res = cli(
        "preprocess", "--tiles", tiles, "--labels", empty, "--label-column", col, "--out", out
    )
    assert_one_line_error(res, out, "no features")


def test_labels_outside_tiles(cli, target, tmp_path):
    tiles, labels, col = target
    moved = tmp_path / "moved.gpkg"
    gdf = gpd.read_file(labels)
    gdf.geometry = gdf.geometry.translate(1e6, 0)
    gdf.to_file(moved, layer="fields")
    out = tmp_path / "r.zarr"
    res = cli(
        "preprocess", "--tiles", tiles, "--labels", moved, "--label-column", col, "--out", out
    )
    assert_one_line_error(res, out, "no labelled field overlaps")


def _copy_tiles(tiles, tmp_path):
    import shutil

    copy = tmp_path / "tiles"
    shutil.copytree(tiles, copy)
    return copy, sorted(copy.glob("*.tif"))


def test_duplicate_dates(cli, target, tmp_path):
    import shutil

    tiles, labels, col = target
    copy, files = _copy_tiles(tiles, tmp_path)
    shutil.copy(files[0], files[0].with_name(files[0].stem + "_copy.tif"))
    out = tmp_path / "r.zarr"
    res = cli(
        "preprocess", "--tiles", copy, "--labels", labels, "--label-column", col, "--out", out
    )
    assert_one_line_error(res, out, "duplicate acquisition date")


def test_corrupt_tile(cli, target, tmp_path):
    tiles, labels, col = target
    copy, files = _copy_tiles(tiles, tmp_path)
    files[1].write_bytes(b"not a tiff")
    out = tmp_path / "r.zarr"
    res = cli(
        "preprocess", "--tiles", copy, "--labels", labels, "--label-column", col, "--out", out
    )
    assert_one_line_error(res, out, files[1].name)


def test_median_buffer_and_pixel_sampling(world, catalog):
    from cropmeta.ingest.catalog_regions import preprocess_catalog_region

    name = catalog.targets()[0].name
    mean = preprocess_catalog_region(world, name)
    median = preprocess_catalog_region(world, name, statistic="median")
    assert median.sizes["sample"] == mean.sizes["sample"]
    assert not np.allclose(median["x"].values, mean["x"].values)
    # medians and means of the same fields agree closely, yet not exactly
    assert np.nanmedian(np.abs(median["x"].values - mean["x"].values)) < 0.02

    buffered = preprocess_catalog_region(world, name, buffer=10.0)
    assert (buffered["n_pixels"].values <= mean["n_pixels"].values.max()).all()
    both = np.intersect1d(buffered["field_id"].values, mean["field_id"].values)
    shrunk = buffered["n_pixels"].to_series().set_axis(buffered["field_id"].values)[both]
    full = mean["n_pixels"].to_series().set_axis(mean["field_id"].values)[both]
    assert (shrunk < full).all()  # one pixel ring (10 m) removed from every field

    pixels = preprocess_catalog_region(world, name, sampling="pixels", pixels_per_field=3, seed=1)
    counts = np.bincount(pixels["field_id"].values)
    assert counts.max() == 3 and (pixels["n_pixels"].values == 1).all()
    assert pixels.sizes["sample"] > mean.sizes["sample"]
    again = preprocess_catalog_region(world, name, sampling="pixels", pixels_per_field=3, seed=1)
    np.testing.assert_array_equal(pixels["x"].values, again["x"].values)


def test_points_are_single_pixel_samples(world, catalog, tmp_path):
    from cropmeta.ingest.preprocess import preprocess_region

    entry = catalog.targets()[0]
    fields = gpd.read_file(catalog.path(entry.labels))
    points = fields.copy()
    points.geometry = fields.geometry.representative_point()
    path = tmp_path / "points.gpkg"
    points.to_file(path, layer="points")
    ds = preprocess_region(catalog.path(entry.tiles), path, entry.label_column)
    assert ds.sizes["sample"] > 0.8 * len(points)
    assert (ds["n_pixels"].values == 1).all()
