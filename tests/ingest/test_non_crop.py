"""`preprocess --non-crop-pixels N`: pixels away from every field become class non_crop, so a
map can leave roads, villages, woods and water out of the crops."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from checks import assert_one_line_error

from cropmeta.errors import InputError
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.ingest.pixels import NON_CROP
from cropmeta.synth import fields as kinds
from cropmeta.synth.world import land_cover
from cropmeta.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def with_non_crop(world, catalog):
    name = catalog.targets()[0].name
    plain = preprocess_catalog_region(world, name)
    return name, plain, preprocess_catalog_region(world, name, non_crop_pixels=30)


def test_non_crop_pixels_lie_away_from_every_field(with_non_crop, catalog):
    name, plain, ds = with_non_crop
    code = load_taxonomy().resolve(NON_CROP).code
    extra = ds["code"].values == code
    assert extra.sum() == 30 and not (plain["code"].values == code).any()
    classes = {c["name"]: c for c in json.loads(ds.attrs["classes"])}
    assert classes[NON_CROP]["count"] == 30
    entry = catalog.region(name)
    fields = gpd.read_file(catalog.path(entry.labels)).geometry.union_all()
    centres = shapely.points(ds["cx"].values[extra], ds["cy"].values[extra])
    assert shapely.distance(fields, centres).min() > 20 - 5  # 20 m from a pixel's centre
    ids = ds["field_id"].values
    assert (ids[extra] < 0).all() and len(set(ids)) == len(ids)
    np.testing.assert_array_equal(ds["x"].values[~extra], plain["x"].values)  # fields as before


def test_non_crop_pixels_are_not_fields_on_the_ground(with_non_crop, world, catalog):
    """Checked against the synthetic world's truth: no sampled pixel lies on a labelled field."""
    import rasterio

    name, _, ds = with_non_crop
    entry = catalog.region(name)
    truth = land_cover(name, seed=7, scale="tiny")
    tile = next(catalog.path(entry.tiles).glob("*.tif"))
    extra = ds["code"].values == load_taxonomy().resolve(NON_CROP).code
    with rasterio.open(tile) as src:
        rows, cols = rasterio.transform.rowcol(
            src.transform, ds["cx"].values[extra], ds["cy"].values[extra]
        )
    assert not (truth[rows, cols] == kinds.FIELD).any()


def test_non_crop_needs_tiles_a_label_file_and_the_class(cli, world, catalog, tmp_path):
    entry = catalog.targets()[0]
    tiles, labels = catalog.path(entry.tiles), catalog.path(entry.labels)
    out = tmp_path / "t.zarr"
    res = cli("preprocess", "--tiles", tiles, "--labels", labels, "--unlabelled",
              "--non-crop-pixels", "5", "--out", out)  # fmt: skip
    assert res.exit_code == 2 and "--non-crop-pixels" in res.output and not out.exists()
    args = ("preprocess", "--tiles", tiles, "--labels", labels, "--label-column",
            entry.label_column, "--out", out)  # fmt: skip
    assert_one_line_error(cli(*args, "--non-crop-pixels", "1000000"), out, "cannot sample")
    without = tmp_path / "taxonomy.yaml"  # a catalog's own taxonomy, without non_crop
    base = load_taxonomy()
    without.write_text(
        base.model_copy(
            update={"classes": [c for c in base.classes if c.name != NON_CROP]}
        ).model_dump_json(),
        encoding="utf-8",
    )  # JSON is YAML
    catalog_file = tmp_path / "catalog.yaml"
    data = json.loads(catalog.model_dump_json())
    data["regions"] = [
        {**r, "tiles": str(tiles), "labels": str(labels), "non_crop_pixels": 5}
        for r in data["regions"]
        if r["name"] == entry.name
    ]
    catalog_file.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="has no 'non_crop' class"):
        preprocess_catalog_region(catalog_file, entry.name, tmp_path / "c.zarr")
    assert not (tmp_path / "c.zarr").exists()
