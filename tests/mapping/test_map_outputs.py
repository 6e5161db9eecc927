"""What `cropmeta map` writes, checked through rasterio/GDAL, geopandas and the XML sidecars:
COG layout and overviews, colour table, class names, nodata, legend, QGIS style, probability
stack, uncertainty band, AOI mask and per-field export."""

from __future__ import annotations

import csv
import json
from xml.etree import ElementTree as ET

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from checks import assert_one_line_error
from rasterio.features import rasterize

from cropmeta.mapping.crop_map import map_region
from cropmeta.models.bundle import load_config
from cropmeta.synth.world import make_world


@pytest.fixture(scope="module")
def big(catalog, tmp_path_factory):
    """The first target region again, on a 320 px tile: large enough for an overview level."""
    target = catalog.targets()[0].name
    root = make_world(
        tmp_path_factory.mktemp("big") / "world",
        seed=7,
        scale="tiny",
        regions=[target],
        tile_size=320,
    )
    return root.parent / target


@pytest.fixture(scope="module")
def full_map(cli, adapted, big, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "map.tif"
    res = cli(
        "map",
        "--model",
        adapted,
        "--tiles",
        big / "tiles",
        "--out",
        out,
        "--probabilities",
        "--uncertainty",
        "entropy",
        "--fields",
        big / "fields.gpkg",
        "--workers",
        "1",
    )
    assert res.exit_code == 0, res.output
    return out


def _classes(adapted):
    return load_config(adapted).classes


def test_class_map_is_a_cog_with_overviews_colours_names_and_nodata(full_map, adapted, big):
    classes = _classes(adapted)
    codes = {c.code for c in classes}
    with rasterio.open(full_map) as m, rasterio.open(next((big / "tiles").glob("*.tif"))) as ref:
        assert m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert m.profile["compress"] == "deflate" and m.profile["tiled"]
        assert m.block_shapes == [(256, 256)]
        assert m.overviews(1) == [2]
        assert m.crs == ref.crs and m.transform == ref.transform and m.shape == ref.shape
        assert m.dtypes[0] == "uint8" and m.nodata == 0
        assert m.colorinterp[0] == rasterio.enums.ColorInterp.palette
        cmap = m.colormap(1)
        data = m.read(1)
        overview = m.read(1, out_shape=(160, 160))  # served from the overview (mode)
        tags = m.tags()
    for c in classes:
        assert cmap[c.code][:3] == tuple(int(c.colour[i : i + 2], 16) for i in (1, 3, 5))
        assert tags[f"CLASS_{c.code}"] == c.name
    assert set(np.unique(data)) <= codes | {0} and (data > 0).mean() > 0.5
    assert set(np.unique(overview)) <= codes | {0}  # mode keeps codes; averaging would not


def test_sidecars_name_every_class(full_map, adapted):
    classes = _classes(adapted)
    legend = json.loads(full_map.with_suffix(".legend.json").read_text())
    assert legend["nodata"]["code"] == 0
    assert [(r["code"], r["shared_code"], r["name"], r["colour"]) for r in legend["classes"]] == [
        (c.code, c.code, c.name, c.colour) for c in classes
    ]
    assert all(r["local_names"] for r in legend["classes"])
    rows = list(csv.DictReader(full_map.with_suffix(".legend.csv").open()))
    assert [int(r["code"]) for r in rows] == [c.code for c in classes]
    pam = ET.parse(full_map.with_name(full_map.name + ".aux.xml")).getroot()
    names = [e.text or "" for e in pam.iter("Category")]
    assert all(names[c.code] == c.name for c in classes)
    rat = [[f.text for f in row] for row in pam.iter("Row")]
    assert [(int(r[0]), r[1]) for r in rat] == [(c.code, c.name) for c in classes]
    qml = ET.parse(full_map.with_suffix(".qml")).getroot()
    entries = {int(e.get("value")): e.get("label") for e in qml.iter("paletteEntry")}
    assert entries == {c.code: c.name for c in classes}


def test_probability_stack_and_entropy_agree_with_the_classes(full_map, adapted):
    classes = _classes(adapted)
    with rasterio.open(full_map) as m:
        labels = m.read(1)
    with rasterio.open(full_map.with_suffix(".probabilities.tif")) as p:
        assert p.count == len(classes) and p.nodata == 255 and p.scales == (0.01,) * p.count
        assert p.descriptions == tuple(f"p_{c.name}" for c in classes)
        assert p.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and p.overviews(1) == [2]
        probs = p.read().astype(int)
    with rasterio.open(full_map.with_suffix(".entropy.tif")) as u:
        unc = u.read(1).astype(int)
    ok = labels > 0
    assert (probs[:, ~ok] == 255).all() and (unc[~ok] == 255).all()
    total = probs[:, ok].sum(axis=0)
    assert np.abs(total - 100).max() <= len(classes)  # percent, rounded per class
    band = {c.code: i for i, c in enumerate(classes)}
    chosen = np.take_along_axis(probs[:, ok], np.vectorize(band.get)(labels[ok])[None], 0)[0]
    assert (chosen == probs[:, ok].max(axis=0)).all()  # the class shown is the most probable
    assert unc[ok].min() >= 0 and unc[ok].max() <= 100
    p = probs[:, ok] / 100.0
    h = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(0) / np.log(len(classes))
    assert np.abs(h * 100 - unc[ok]).mean() < 3  # the band is the normalised entropy


def test_field_export_votes_with_the_pixels(full_map, big):
    fields = gpd.read_file(full_map.with_suffix(".fields.gpkg"))
    source = gpd.read_file(big / "fields.gpkg")
    assert len(fields) == len(source) and set(source.columns) <= set(fields.columns)
    assert {"class_code", "class_name", "probability", "uncertainty_entropy", "pixels"} <= set(
        fields.columns
    )
    seen = fields[fields.pixels > 0]
    assert len(seen) > 0.8 * len(fields)
    assert seen.probability.between(0, 1).all() and seen.uncertainty_entropy.between(0, 1).all()
    with rasterio.open(full_map) as m:
        labels, tf = m.read(1), m.transform
        ids = rasterize(
            zip(fields.to_crs(m.crs).geometry, range(len(fields)), strict=True),
            out_shape=labels.shape,
            transform=tf,
            fill=-1,
            dtype="int32",
        )
    agree = []
    for i in seen.index[:60]:
        px = labels[(ids == i) & (labels > 0)]
        if len(px) >= 5:
            agree.append(np.bincount(px).argmax() == fields.class_code[i])
    assert np.mean(agree) > 0.8  # soft vote over probabilities ≈ the pixels' majority


def test_aoi_in_another_crs_restricts_the_map(cli, adapted, big, tmp_path):
    with rasterio.open(next((big / "tiles").glob("*.tif"))) as ref:
        crs, b = ref.crs, ref.bounds
    half = shapely.box(b.left, b.bottom, (b.left + b.right) / 2, b.top)
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[half], crs=crs).to_crs("EPSG:4326").to_file(aoi)
    out = tmp_path / "aoi.tif"
    res = map_region(adapted, big / "tiles", out, aoi=aoi, workers=1)
    with rasterio.open(res.path) as m:
        data = m.read(1)
    assert (data[:, 170:] == 0).all()  # right half outside the AOI (a reprojected edge)
    assert (data[:, :150] > 0).mean() > 0.5


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: None, "AOI file not found"),
        (lambda p: p.write_text("not a vector file"), "cannot read AOI"),
        (
            lambda p: gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs="EPSG:4326").to_file(p),
            "AOI must be polygons",
        ),
        (
            lambda p: gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4326").to_file(
                p
            ),
            "no AOI polygon overlaps the raster",
        ),
    ],
)
def test_bad_aoi_is_refused(cli, adapted, catalog, tmp_path, make, fragment):
    aoi = tmp_path / "aoi.gpkg"
    make(aoi)
    out = tmp_path / "m.tif"
    tiles = catalog.path(catalog.targets()[0].tiles)
    res = cli("map", "--model", adapted, "--tiles", tiles, "--out", out, "--aoi", aoi)
    assert_one_line_error(res, out, fragment)


def test_unknown_uncertainty_kind_is_refused(cli, adapted, catalog, tmp_path):
    out = tmp_path / "m.tif"
    tiles = catalog.path(catalog.targets()[0].tiles)
    res = cli("map", "--model", adapted, "--tiles", tiles, "--out", out, "--uncertainty", "vibes")
    assert_one_line_error(res, out, "uncertainty")


def test_margin_band_is_one_minus_the_top_two_gap(adapted, catalog, tmp_path):
    tiles = catalog.path(catalog.targets()[0].tiles)
    res = map_region(
        adapted, tiles, tmp_path / "m.tif", probabilities=True, uncertainty="margin", workers=1
    )
    with (
        rasterio.open(res.outputs["probabilities"]) as p,
        rasterio.open(res.outputs["uncertainty"]) as u,
    ):
        probs, unc = p.read().astype(int), u.read(1).astype(int)
    ok = unc != 255
    top = np.sort(probs[:, ok], axis=0)
    assert np.abs((100 - (top[-1] - top[-2])) - unc[ok]).max() <= 2


def test_pixels_below_min_probability_stay_unclassified(cli, full_map, adapted, big, tmp_path):
    """--min-probability leaves the unsure pixels nodata in the class map, changes no other
    pixel, and keeps their probabilities; the legend says why a pixel is unclassified."""
    out = tmp_path / "sure.tif"
    res = cli("map", "--model", adapted, "--tiles", big / "tiles", "--out", out,
              "--min-probability", "0.6", "--probabilities", "--workers", "1")  # fmt: skip
    assert res.exit_code == 0, res.output
    with rasterio.open(full_map) as m, rasterio.open(out) as s:
        every, sure = m.read(1), s.read(1)
    with rasterio.open(out.with_suffix(".probabilities.tif")) as p:
        top = p.read().max(axis=0).astype(int)  # percent, 255 = nodata
    left = (every > 0) & (sure == 0)
    assert left.any() and (sure[sure > 0] == every[sure > 0]).all()
    assert (top[left] <= 60).all() and (top[sure > 0] >= 60).all()  # rounded percent
    assert (top[left] < 255).all()  # probabilities still written for the unsure pixels
    legend = json.loads(out.with_suffix(".legend.json").read_text())
    assert "min-probability" in legend["nodata"]["meaning"]
    res = cli("map", "--model", adapted, "--tiles", big / "tiles", "--out", tmp_path / "x.tif",
              "--min-probability", "1.5")  # fmt: skip
    assert res.exit_code == 2 and not (tmp_path / "x.tif").exists()
