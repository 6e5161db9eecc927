"""`preprocess --unlabelled`: fields without labels, or random pixels of the tiles, become a
region dataset prepared exactly like a labelled one, marked unlabelled, and refused wherever
labels are needed.

Everything is real files: the tiny synthetic world's GeoTIFFs and a copy of its field GeoPackage
with the label column removed, and for the random pixels a small stack of GeoTIFFs written here
whose left part is nodata, so that "the tiles' valid area" is known exactly.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from checks import assert_one_line_error

from cropmeta.errors import InputError
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.ingest.dataset import (
    UNLABELLED_CODE,
    UNLABELLED_ONLY,
    RegionArrays,
    open_region,
)
from cropmeta.ingest.prepare import incompatibility
from cropmeta.ingest.preprocess import preprocess_region, preprocess_unlabelled
from cropmeta.ownership import ZARR_ATTR


@pytest.fixture(scope="module")
def target(catalog):
    """The first target region's catalog entry."""
    return catalog.targets()[0]


@pytest.fixture(scope="module")
def parcels(catalog, target, tmp_path_factory) -> Path:
    """The target's fields without their label column, in shuffled order (so that samples must
    be matched by field id), as a GeoPackage layer of another name."""
    fields = gpd.read_file(catalog.path(target.labels))
    shuffled = fields.drop(columns=[target.label_column]).sample(frac=1.0, random_state=0)
    path = tmp_path_factory.mktemp("parcels") / "parcels.gpkg"
    shuffled.to_file(path, layer="parcels")
    return path


@pytest.fixture(scope="module")
def labelled(world, target, tmp_path_factory) -> Path:
    """The target preprocessed with its labels, as the catalog describes it."""
    out = tmp_path_factory.mktemp("labelled") / "labelled.zarr"
    preprocess_catalog_region(world, target.name, out)
    return out


def by_id(ds: xr.Dataset) -> dict:
    return {fid: i for i, fid in enumerate(ds["field_id"].values.tolist())}


def test_unlabelled_fields_give_the_labelled_series(cli, catalog, target, parcels, labelled):
    out = parcels.parent / "unlabelled.zarr"
    res = cli(
        "preprocess",
        "--unlabelled",
        "--tiles",
        catalog.path(target.tiles),
        "--fields",
        parcels,
        "--id-column",
        "field_id",
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    assert "unlabelled samples" in res.stdout
    ds, lab = open_region(out), open_region(labelled)
    assert ds.attrs["unlabelled"] is True and ds.attrs[ZARR_ATTR] == "region-dataset"
    assert json.loads(ds.attrs["classes"]) == []
    assert (ds["code"].values == UNLABELLED_CODE).all() and set(ds["label"].values) == {""}
    provenance = json.loads(ds.attrs["provenance"])
    assert provenance["unlabelled"] is True and "label_column" not in provenance
    assert ds.attrs["preparation"] == lab.attrs["preparation"]
    np.testing.assert_array_equal(ds["doy"].values, lab["doy"].values)
    np.testing.assert_array_equal(ds["time"].values, lab["time"].values)

    mine = by_id(ds)
    assert set(lab["field_id"].values.tolist()) <= set(mine)  # every labelled field is there
    rows = [mine[f] for f in lab["field_id"].values.tolist()]
    assert rows != sorted(rows)  # the shuffled file order is kept, so matching by id matters
    np.testing.assert_array_equal(ds["x"].values[rows], lab["x"].values)
    for name in ("valid_fraction", "n_pixels", "cx", "cy"):
        np.testing.assert_array_equal(ds[name].values[rows], lab[name].values)

    arrays = RegionArrays.load(out)  # what adapt --unlabelled reads
    assert not arrays.labelled and arrays.classes == {} and arrays.class_names == {}
    assert incompatibility(arrays.preparation, RegionArrays.load(labelled).preparation) is None
    np.testing.assert_array_equal(arrays.x, ds["x"].values)


def test_stages_needing_labels_refuse_an_unlabelled_dataset(cli, catalog, target, tmp_path):
    out = tmp_path / "pixels.zarr"
    res = cli(
        "preprocess", "--unlabelled", "--tiles", catalog.path(target.tiles), "--sample-pixels", 30,
        "--out", out,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    for call in (
        lambda: RegionArrays.load(out, require_labels=True),
        lambda: RegionArrays.load(out).require_labels(out),
    ):
        with pytest.raises(InputError) as info:
            call()
        assert info.value.path == str(out) and info.value.problem == UNLABELLED_ONLY
        assert "\n" not in str(info.value)


def test_labelled_datasets_pass_the_label_check(labelled):
    arrays = RegionArrays.load(labelled, require_labels=True)
    assert arrays.labelled and arrays.require_labels(labelled) is arrays
    assert (arrays.codes > 0).all() and arrays.classes


def test_pixel_sampling_of_unlabelled_fields_matches_labelled(catalog, target, parcels, tmp_path):
    """``--sampling pixels`` without labels: with every pixel of every field taken, the samples
    are exactly the labelled ones (matched by pixel centre), field ids included."""
    tiles = catalog.path(target.tiles)
    options = dict(sampling="pixels", pixels_per_field=100_000, id_column="field_id", seed=5)
    lab = preprocess_region(tiles, catalog.path(target.labels), target.label_column, **options)
    ds = preprocess_unlabelled(tiles, parcels, **options)
    assert ds.attrs["unlabelled"] and (ds["n_pixels"].values == 1).all()

    def keyed(d: xr.Dataset) -> dict:
        centres = zip(d["cx"].values.tolist(), d["cy"].values.tolist(), strict=True)
        return {xy: i for i, xy in enumerate(centres)}

    mine, theirs = keyed(ds), keyed(lab)
    assert set(mine) == set(theirs) and len(mine) == ds.sizes["sample"] > lab.sizes["sample"] // 2
    rows = [mine[k] for k in theirs]
    np.testing.assert_array_equal(ds["x"].values[rows], lab["x"].values)
    np.testing.assert_array_equal(ds["field_id"].values[rows], lab["field_id"].values)


def test_points_without_labels_match_labelled_points(catalog, target, tmp_path):
    """A CSV of points (no label, no id column) gives the series the same points give with
    labels; ids are then the row numbers, as for labelled points."""
    fields = gpd.read_file(catalog.path(target.labels))
    inside = fields.geometry.representative_point()
    table = fields[["field_id", target.label_column]].assign(east=inside.x, north=inside.y)
    with_labels, without = tmp_path / "labelled.csv", tmp_path / "points.csv"
    table.drop(columns=["field_id"]).to_csv(with_labels, index=False)
    table[["east", "north"]].to_csv(without, index=False)
    where = dict(x_column="east", y_column="north", labels_crs=fields.crs.to_wkt())
    tiles = catalog.path(target.tiles)
    lab = preprocess_region(tiles, with_labels, target.label_column, **where)
    ds = preprocess_unlabelled(tiles, without, **where)
    assert ds.attrs["unlabelled"] and (ds["n_pixels"].values == 1).all()
    np.testing.assert_array_equal(ds["field_id"].values, lab["field_id"].values)
    np.testing.assert_array_equal(ds["x"].values, lab["x"].values)
    assert json.loads(ds.attrs["summary"])["labels"]["points"] == len(fields)


# --- random pixels of the tiles' valid area --------------------------------------------------

SIZE, NODATA_COLUMNS = 20, 8  # a 20×20 grid whose 8 leftmost columns are nodata on every date
DATES = [date(2021, 4, 10), date(2021, 5, 10), date(2021, 6, 9), date(2021, 7, 9)]
ORIGIN = (500_000.0, 5_000_000.0)


@pytest.fixture(scope="module")
def half_empty(tmp_path_factory) -> Path:
    """Per-date GeoTIFFs (B04, B08; nodata -1): B04 is 0.1 + 0.001 × the pixel's index on every
    date, so a sample's series says which pixel it came from; the left columns are nodata."""
    folder = tmp_path_factory.mktemp("half-empty") / "tiles"
    folder.mkdir()
    index = np.arange(SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    for t, day in enumerate(DATES):
        bands = np.stack([0.1 + 0.001 * index, np.full_like(index, 0.3 + 0.05 * t)])
        bands[:, :, :NODATA_COLUMNS] = -1
        profile = dict(
            driver="GTiff",
            width=SIZE,
            height=SIZE,
            count=2,
            dtype="float32",
            crs="EPSG:32633",
            transform=Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]),
            nodata=-1,
        )
        with rasterio.open(folder / f"S2_{day:%Y%m%d}.tif", "w", **profile) as dst:
            dst.write(bands)
            dst.descriptions = ("B04", "B08")
    return folder


def test_sample_pixels_draws_from_the_valid_area_only(cli, half_empty, tmp_path):
    out = tmp_path / "pixels.zarr"
    res = cli(
        "preprocess", "--unlabelled", "--tiles", half_empty, "--sample-pixels", 60, "--seed", 3,
        "--out", out,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ds = open_region(out)
    ids = ds["field_id"].values
    assert ds.sizes["sample"] == 60 and len(set(ids)) == 60 and (np.diff(ids) > 0).all()
    rows, cols = np.divmod(ids, SIZE)
    assert (cols >= NODATA_COLUMNS).all()
    np.testing.assert_allclose(ds["cx"].values, ORIGIN[0] + 10 * (cols + 0.5))
    np.testing.assert_allclose(ds["cy"].values, ORIGIN[1] - 10 * (rows + 0.5))
    b04 = ds["x"].sel(band="B04").values  # (sample, time): the pixel's own value throughout
    np.testing.assert_allclose(b04, np.repeat(0.1 + 0.001 * ids[:, None], b04.shape[1], 1), 1e-5)
    assert ds.attrs["unlabelled"] and (ds["code"].values == UNLABELLED_CODE).all()
    summary = json.loads(ds.attrs["summary"])
    assert summary["samples"] == 60 and summary["short_of_request"] == 0
    assert json.loads(ds.attrs["provenance"])["sample_pixels"] == 60

    again = preprocess_unlabelled(half_empty, sample_pixels=60, seed=3)
    np.testing.assert_array_equal(again["field_id"].values, ids)
    np.testing.assert_array_equal(again["x"].values, ds["x"].values)
    other = preprocess_unlabelled(half_empty, sample_pixels=60, seed=4)
    assert set(other["field_id"].values) != set(ids)


def test_sample_pixels_beyond_the_valid_area_takes_all_of_it(half_empty):
    valid = SIZE * (SIZE - NODATA_COLUMNS)
    ds = preprocess_unlabelled(half_empty, sample_pixels=valid + 60, seed=0)
    assert ds.sizes["sample"] == valid
    assert set(ds["field_id"].values) == {
        r * SIZE + c for r in range(SIZE) for c in range(NODATA_COLUMNS, SIZE)
    }
    summary = json.loads(ds.attrs["summary"])
    assert summary["short_of_request"] == 60 and summary["pixels_drawn"] == SIZE * SIZE
    assert summary["too_few_valid_observations"] == SIZE * NODATA_COLUMNS


# --- refusals: one line, exit status 2, nothing written ---------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--fields", "{parcels}", "--label-column", "kultura"], "--label-column: --unlabelled"),
        (["--fields", "{parcels}", "--drop-unknown"], "--drop-unknown: --unlabelled reads no"),
        ([], "--unlabelled: give --tiles and one of --fields"),
        (["--fields", "{parcels}", "--sample-pixels", "10"], "--unlabelled: give --tiles"),
        (["--table", "{parcels}"], "--table: --unlabelled takes --tiles"),
    ],
)
def test_option_refusals(cli, catalog, target, parcels, tmp_path, extra, fragment):
    out = tmp_path / "u.zarr"
    args = [a.format(parcels=parcels) for a in extra]
    tiles = catalog.path(target.tiles)
    res = cli("preprocess", "--unlabelled", "--tiles", tiles, *args, "--out", out)
    assert_one_line_error(res, out, fragment)


def test_sample_pixels_needs_unlabelled(cli, catalog, target, tmp_path):
    out = tmp_path / "u.zarr"
    tiles = catalog.path(target.tiles)
    res = cli("preprocess", "--tiles", tiles, "--sample-pixels", 10, "--out", out)
    assert_one_line_error(res, out, "--sample-pixels: random pixels are unlabelled")


def test_file_refusals_name_the_file(cli, catalog, target, parcels, half_empty, tmp_path):
    tiles = catalog.path(target.tiles)
    out = tmp_path / "u.zarr"
    missing = tmp_path / "none.gpkg"
    res = cli("preprocess", "--unlabelled", "--tiles", tiles, "--fields", missing, "--out", out)
    assert_one_line_error(res, out, f"{missing}: fields file not found")

    far = tmp_path / "far.gpkg"
    moved = gpd.read_file(parcels)
    moved.geometry = moved.geometry.translate(1e6, 1e6)
    moved.to_file(far)
    res = cli("preprocess", "--unlabelled", "--tiles", tiles, "--fields", far, "--out", out)
    assert_one_line_error(res, out, f"{far}: no field overlaps the tiles")

    no_crs = tmp_path / "no-crs.csv"
    no_crs.write_text("field_id,name\n1,a\n")
    res = cli("preprocess", "--unlabelled", "--tiles", tiles, "--fields", no_crs, "--out", out)
    assert_one_line_error(res, out, f"{no_crs}: no coordinate columns")

    res = cli(
        "preprocess", "--unlabelled", "--tiles", half_empty, "--sample-pixels", SIZE * SIZE + 1,
        "--out", out,
    )  # fmt: skip
    assert_one_line_error(res, out, f"{half_empty}: cannot sample {SIZE * SIZE + 1} pixels")


def test_never_overwrites_what_cropmeta_did_not_write(cli, half_empty, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    res = cli(
        "preprocess", "--unlabelled", "--tiles", half_empty, "--sample-pixels", 5, "--out", out
    )
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert str(out) in res.stderr and (out / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
