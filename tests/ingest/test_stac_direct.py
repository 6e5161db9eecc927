"""Days whose assets lie on the output grid are read without odc-stac
(:mod:`cropmeta.ingest.sources.stac_direct`): the values must be those odc-stac gives — 10 m
bands as stored, 20 m bands upsampled by GDAL's warper's bilinear and nearest rules, nodata
holes and same-day mosaics included — and a day that needs a warp still goes to odc-stac."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from cropmeta.catalog import RasterSpec
from cropmeta.ingest.prepare import Preparation
from cropmeta.ingest.sources import StacStack, open_source, stac
from cropmeta.ingest.sources.stac_direct import place
from cropmeta.synth import make_world
from cropmeta.synth.providers import OTHER_ZONE_DATE, write_provider_items

REGION = "brandenburg"
UTM33 = CRS.from_epsg(32633)
GRID = (UTM33, Affine(10, 0, 300000, 0, -10, 5800000))


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("direct")
    world = make_world(root / "world", seed=1, regions=[REGION], tile_size=128, scale="tiny")
    return write_provider_items(world, REGION, root / "es", "earth-search", blocksize=128)


def direct_and_warped(
    path: Path, monkeypatch: pytest.MonkeyPatch, **spec
) -> tuple[StacStack, StacStack]:
    """The items read as cropmeta reads them, and with every day through odc-stac."""
    spec = RasterSpec(layout="stac", path=str(path), **spec)
    direct = open_source(spec)
    with monkeypatch.context() as patch:
        patch.setattr(stac, "days_on_grid", lambda *_args: {})
        warped = open_source(spec)
    assert warped.direct == {}
    return direct, warped


def every_band(stack: StacStack) -> Preparation:
    return Preparation(bands=list(stack.band_names), quality_band=None)


@pytest.mark.parametrize("resampling", [None, "nearest"])
def test_days_on_the_grid_read_as_odc_stac_reads_them(items, monkeypatch, resampling):
    """Every day but the one with a tile in the other UTM zone is read directly, to the
    same values as odc-stac's (bilinear by default, SCL by nearest neighbour), in any window."""
    direct, warped = direct_and_warped(items, monkeypatch, resampling=resampling)
    assert sorted(direct.direct) == [t for t in range(len(direct.dates)) if t != OTHER_ZONE_DATE]
    prep = every_band(direct)
    window = Window(37, 21, 50, 61)  # odd offsets: half a 20 m pixel
    for t in range(len(direct.dates)):
        got = direct.read(t, prep)
        np.testing.assert_array_equal(got, warped.read(t, prep), err_msg=str(direct.dates[t]))
        np.testing.assert_array_equal(direct.read(t, prep, window), got[:, 21:82, 37:87])
    assert not direct.fetched and direct.readers  # read in the background, nothing left


def _hole(path: Path, rows: slice, cols: slice) -> None:
    """Nodata (0) over ``rows``, ``cols`` of a COG, rewritten in place (a copy's)."""
    with rasterio.open(path) as src:
        data, profile = src.read(1), src.profile
    data[rows, cols] = 0
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def test_nodata_holes_and_mosaics_as_the_warper_leaves_them(items, monkeypatch, tmp_path):
    """A 20 m band with nodata holes (a block, a single pixel) is upsampled over the valid
    neighbours only and is nodata where the pixel under a centre is, as GDAL's warper does;
    a hole in the first tile of a day is filled from the second."""
    copy = tmp_path / "es"
    shutil.copytree(items.parent, copy)
    doc = json.loads((copy / "items.json").read_text())
    one_tile, *_ = doc["features"]
    _hole(copy / one_tile["assets"]["rededge1"]["href"], slice(10, 20), slice(10, 20))
    _hole(copy / one_tile["assets"]["rededge1"]["href"], slice(30, 31), slice(40, 41))
    day = doc["features"][1]["properties"]["datetime"][:10]
    first, second = sorted(
        (f for f in doc["features"] if f["properties"]["datetime"][:10] == day),
        key=lambda f: (f["properties"]["datetime"], f["id"]),
    )  # the first wins where both tiles have a value
    asset = first["assets"]["rededge1"]
    east = asset["proj:transform"][2] > second["assets"]["rededge1"]["proj:transform"][2]
    width = asset["proj:shape"][1]
    in_both = slice(0, 10) if east else slice(width - 10, width)  # where the tiles overlap
    _hole(copy / asset["href"], slice(0, 40), in_both)
    direct, warped = direct_and_warped(copy / "items.json", monkeypatch)
    for t in (0, 1):
        got = {b: direct.read(t, Preparation(bands=[b], quality_band=None)) for b in ("B04", "B05")}
        want = warped.read(t, Preparation(bands=["B05"], quality_band=None))
        np.testing.assert_allclose(got["B05"], want, rtol=0, atol=1e-6)
        holes = np.isnan(got["B05"]).sum() - np.isnan(got["B04"]).sum()  # B05's beyond B04's
        assert holes == (10 * 10 * 4 + 4 if t == 0 else 0)  # each hole pixel: 2 × 2


@pytest.mark.parametrize(
    ("native", "on_grid"),
    [
        ((UTM33, Affine(10, 0, 300100, 0, -10, 5799900), 5, 5), (1, 10, 10)),
        ((UTM33, Affine(20, 0, 300000, 0, -20, 5800000), 5, 5), (2, 0, 0)),
        ((UTM33, Affine(60, 0, 299400, 0, -60, 5800600), 5, 5), (6, -60, -60)),
        ((CRS.from_epsg(32634), Affine(10, 0, 300000, 0, -10, 5800000), 5, 5), None),
        ((UTM33, Affine(20, 0, 300005, 0, -20, 5800000), 5, 5), None),  # off the grid
        ((UTM33, Affine(15, 0, 300000, 0, -15, 5800000), 5, 5), None),  # 1.5 pixels
        ((UTM33, Affine(5, 0, 300000, 0, -5, 5800000), 5, 5), None),  # finer than the grid
        ((UTM33, Affine(10, 1, 300000, 0, -10, 5800000), 5, 5), None),  # rotated
    ],
)  # fmt: skip
def test_which_assets_lie_on_the_grid(native, on_grid):
    placed = place("a.tif", 1, native, GRID, "bilinear")
    if on_grid is None:
        assert placed is None
    else:
        assert (placed.factor, placed.row, placed.col) == on_grid
        assert placed.method == ("nearest" if placed.factor == 1 else "bilinear")
    assert place("a.tif", 1, native, GRID, "cubic") is None or native[1].a == 10
