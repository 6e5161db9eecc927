"""Raster sources (per-date, band-date-pattern, STAC, data cube) on real files written here.

Synthetic inputs are tiny GeoTIFFs/netCDF/Zarr written with rasterio and xarray in tmp_path;
the Sinop MODIS cube in ``../shared/data`` is used where present and skipped otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from cropmeta.catalog import RasterSpec, load_catalog
from cropmeta.errors import InputError
from cropmeta.ingest.prepare import Preparation
from cropmeta.ingest.sources import RasterStack, open_source
from cropmeta.ingest.sources.per_date import TileStack, open_tiles
from cropmeta.synth import make_world

SINOP = Path(__file__).resolve().parents[3] / "shared" / "data" / "sinop-modis-cube"
SINOP_PATTERN = r"MODIS_Sinop_(?P<band>NDVI|EVI)_(?P<date>\d{4}-\d{2}-\d{2})\.tif"
PATTERN = r"S_(?P<band>[a-z]+)_(?P<date>\d{4}-?\d{2}-?\d{2})\.tif"
#: A sinusoidal projection without any EPSG code, like MODIS tiles carry.
SINU = CRS.from_wkt(
    'PROJCS["unknown",GEOGCS["unknown",DATUM["unknown",SPHEROID["unknown",6371007.181,0]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Sinusoidal"],'
    'PARAMETER["longitude_of_center",0],PARAMETER["false_easting",0],'
    'PARAMETER["false_northing",0],UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)
GRID = Affine(250.0, 0, -6_000_000.0, 0, -250.0, -1_300_000.0)
DATES = ["2020-01-05", "2020-01-21", "2020-02-06"]
BANDS = ["nir", "red"]
SHAPE = (6, 8)
PREP = Preparation(bands=BANDS, quality_band=None)


def dn(t: int, b: int) -> np.ndarray:
    """Stored value of date ``t``, band ``b``: distinct per pixel, date and band."""
    return (1000 * (t + 1) + 100 * b + np.arange(np.prod(SHAPE))).reshape(SHAPE).astype("float32")


def write(path: Path, data: np.ndarray, crs: CRS = SINU, transform: Affine = GRID, **kw) -> Path:
    data = data[None] if data.ndim == 2 else data
    with rasterio.open(
        path, "w", driver="GTiff", count=data.shape[0], width=data.shape[2],
        height=data.shape[1], dtype=data.dtype, crs=crs, transform=transform, **kw,
    ) as dst:  # fmt: skip
        dst.write(data)
    return path


def band_folder(root: Path, compact: bool = False) -> Path:
    """S_{band}_{date}.tif files, float32 with NaN nodata and one NaN pixel per file."""
    root.mkdir(exist_ok=True)
    for t, day in enumerate(DATES):
        for b, band in enumerate(BANDS):
            data = dn(t, b)
            data[0, b] = np.nan
            write(root / f"S_{band}_{day.replace('-', '') if compact else day}.tif", data,
                  nodata=float("nan"))  # fmt: skip
    return root


def spec(root: Path, **kw) -> RasterSpec:
    return RasterSpec(
        **{"layout": "band-date-pattern", "path": str(root), "pattern": PATTERN, **kw}
    )


def expected(t: int, scale: float = 1e-4) -> np.ndarray:
    out = np.stack([dn(t, b) for b in range(len(BANDS))]) * np.float32(scale)
    out[:, 0, :2] = np.nan  # NaN in either band masks the pixel
    return out


def file_wkt(path: Path) -> str:
    with rasterio.open(path) as src:
        return src.crs.to_wkt()


def assert_input_error(call, path: Path, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        call()
    assert Path(err.value.path).name == path.name, err.value
    assert fragment in err.value.problem, err.value


@pytest.fixture()
def sinop() -> Path:
    if not SINOP.is_dir():
        pytest.skip(f"real data not present: {SINOP}")
    return SINOP


# --- band-date-pattern ------------------------------------------------------------------------


def test_sinop_band_date_pattern_scaled_and_custom_crs_kept(sinop):
    s = RasterSpec(layout="band-date-pattern", path=sinop.name, pattern=SINOP_PATTERN, scale=1e-4)
    stack = open_source(s, root=sinop.parent)
    assert isinstance(stack, RasterStack)
    assert len(stack.dates) == 23 and stack.dates == sorted(stack.dates)
    assert stack.band_names == ["EVI", "NDVI"] and (stack.width, stack.height) == (50, 50)
    with rasterio.open(sinop / "MODIS_Sinop_NDVI_2013-09-14.tif") as src:
        assert src.scales == (1.0,)  # no scale metadata: the spec's scale is needed
        assert stack.crs.to_wkt() == src.crs.to_wkt() and stack.crs.to_epsg() is None
        assert stack.transform == src.transform
    ndvi = np.stack([stack.read(t, Preparation(bands=["NDVI"], quality_band=None))
                     for t in range(len(stack.dates))])  # fmt: skip
    assert np.isfinite(ndvi).mean() > 0.99
    assert np.nanmin(ndvi) >= -0.2 and np.nanmax(ndvi) <= 1.0 and np.nanmean(ndvi) > 0.3


def test_band_pattern_nan_nodata_metadata_scale_override_and_windows(tmp_path):
    root = band_folder(tmp_path / "b", compact=True)
    for f in root.iterdir():  # metadata scale is honoured when no override is given
        with rasterio.open(f, "r+") as dst:
            dst.scales = (1e-4,)
    (root / "S_nir_20200105.tif.aux.xml").write_text("<PAMDataset/>")
    (root / "notes.csv").write_text("not a raster")
    stack = open_source(spec(root))
    assert [d.isoformat() for d in stack.dates] == DATES and stack.band_names == BANDS
    for t in range(len(DATES)):
        np.testing.assert_allclose(stack.read(t, PREP), expected(t), rtol=1e-6)
    over = open_source(spec(root, scale=2e-4, bands=["red"]))
    assert over.band_names == ["red"]
    red = dn(1, 1) * np.float32(2e-4)
    red[0, 1] = np.nan  # only red's own NaN pixel: nir is not read
    got = over.read(1, Preparation(bands=["red"], quality_band=None))
    np.testing.assert_allclose(got[0], red, rtol=1e-6)
    win = stack.windows(4)
    assert [w.height for w in win] == [4, 2]
    np.testing.assert_allclose(stack.read(2, PREP, win[1]), expected(2)[:, 4:], rtol=1e-6)


def test_band_pattern_nodata_override_and_valid_range(tmp_path):
    root = band_folder(tmp_path / "b")
    stack = open_source(spec(root, scale=1e-4, nodata=float(dn(0, 0)[1, 1]), valid_range=(0, 0.3)))
    first = stack.read(0, PREP)
    assert np.isnan(first[:, 1, 1]).all() and np.isnan(first[:, 0, :2]).all()
    assert np.isfinite(first).sum() == 2 * (SHAPE[0] * SHAPE[1] - 3)
    assert np.isnan(stack.read(2, PREP)).all()  # 0.3+ reflectance leaves the valid range


def _dup(root: Path) -> Path:
    write(root / "S_red_2020-01-21.tif", dn(1, 1))  # the same date as S_red_20200121.tif
    return root / "S_red_20200121.tif"


def _bad_date(root: Path) -> Path:
    return write(root / "S_red_20201340.tif", dn(0, 1))


def _two_bands(root: Path) -> Path:
    path = root / "S_red_20200121.tif"
    return write(path, np.stack([dn(1, 1), dn(1, 1)]))


def _other_crs(root: Path) -> Path:
    return write(root / "S_red_20200121.tif", dn(1, 1), crs=CRS.from_epsg(32614))


def _other_grid(root: Path) -> Path:
    return write(root / "S_red_20200121.tif", dn(1, 1), transform=GRID @ Affine.translation(1, 0))


def _other_size(root: Path) -> Path:
    return write(root / "S_red_20200121.tif", np.zeros((5, 8), "float32"))


def _missing_band(root: Path) -> Path:
    (root / "S_red_20200121.tif").unlink()
    return root / "S_nir_20200121.tif"


def _corrupt(root: Path) -> Path:
    path = root / "S_red_20200121.tif"
    path.write_bytes(b"II*\x00 this is not a GeoTIFF")
    return path


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (_dup, "duplicate band 'red' for 2020-01-21"),
        (_bad_date, "cannot read date '20201340'"),
        (_two_bands, "single-band"),
        (_other_crs, "CRS differs"),
        (_other_grid, "grid"),
        (_other_size, "grid"),
        (_missing_band, "lacks band(s) red"),
        (_corrupt, "cannot open raster"),
    ],
)
def test_band_pattern_rejects_bad_input(tmp_path, damage, fragment):
    root = band_folder(tmp_path / "b", compact=True)
    bad = damage(root)
    assert_input_error(lambda: open_source(spec(root)), bad, fragment)


def test_band_pattern_rejects_bad_spec(tmp_path):
    root = band_folder(tmp_path / "b")
    assert_input_error(lambda: open_source(spec(root, pattern=r"S_(\w+)")), root, "named group")
    assert_input_error(lambda: open_source(spec(root, pattern=r"X_(?P<band>a)(?P<date>1)")), root,
                       "no raster file name matches")  # fmt: skip
    assert_input_error(lambda: open_source(spec(root, bands=["swir"])), root, "swir not found")


def test_corrupt_file_at_read_time_names_the_file(tmp_path):
    root = band_folder(tmp_path / "b")
    stack = open_source(spec(root))
    victim = root / "S_red_2020-01-21.tif"
    victim.write_bytes(b"garbage")
    assert_input_error(lambda: stack.read(1, PREP), victim, "cannot read raster")


# --- per-date ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nebraska(tmp_path_factory) -> Path:
    """The tiny synthetic world's Nebraska region (catalog path)."""
    out = tmp_path_factory.mktemp("world") / "world"
    return make_world(out, seed=0, scale="tiny", regions=["nebraska"])


def test_per_date_reads_synthetic_world_like_open_tiles(nebraska):
    catalog = load_catalog(nebraska)
    entry = catalog.region("nebraska")
    stack = open_source(entry.raster_spec(), root=catalog.root)
    tiles = open_tiles(catalog.path(entry.tiles))
    assert isinstance(tiles, TileStack) and isinstance(tiles, RasterStack)
    assert (stack.dates, stack.band_names, stack.crs, stack.transform) == (
        tiles.dates, tiles.band_names, tiles.crs, tiles.transform)  # fmt: skip
    assert (stack.width, stack.height) == (tiles.width, tiles.height)
    np.testing.assert_array_equal(stack.doys, tiles.doys)
    prep = Preparation(bands=["B04", "B08"])  # with the SCL quality band
    for t in (0, len(tiles.dates) - 1):
        for win in stack.windows(16)[:2]:
            got, want = stack.read(t, prep, win), tiles.read(t, prep, win)
            np.testing.assert_array_equal(got, want)
            assert np.isfinite(got).any()


def test_per_date_band_subset_and_overrides(nebraska):
    catalog = load_catalog(nebraska)
    tiles = catalog.path(catalog.region("nebraska").tiles)
    s = RasterSpec(path=str(tiles), bands=["B08", "B04"], quality_band="SCL", scale=2e-4, offset=0)
    stack = open_source(s)
    assert stack.band_names == ["B08", "B04", "SCL"]
    with rasterio.open(open_tiles(tiles).paths[0]) as src:
        names = list(src.descriptions)
        raw, scl = src.read(names.index("B08") + 1), src.read(names.index("SCL") + 1)
    want = raw.astype("float32") * np.float32(2e-4)
    want[(raw == 0) | np.isin(scl, Preparation(bands=[]).invalid_classes)] = np.nan
    np.testing.assert_allclose(stack.read(0, Preparation(bands=["B08"]))[0], want, rtol=1e-6)
    bad = RasterSpec(path=str(tiles), bands=["B99"])
    assert_input_error(lambda: open_source(bad), open_tiles(tiles).paths[0], "B99 not found")


# --- stac -------------------------------------------------------------------------------------


def stac_items(files: Path, base: Path) -> list[dict]:
    """One item per date (newest first); 'B8' carries nir via eo:bands; hrefs relative."""
    items = []
    for day in reversed(DATES):
        item = pystac.Item(f"S_{day}", None, None, pd.Timestamp(day).to_pydatetime(), {})
        for key, band in (("B8", "nir"), ("red", "red")):
            href = os.path.relpath(files / f"S_{band}_{day}.tif", base)
            extra = {"eo:bands": [{"name": band}]} if key != band else {}
            item.add_asset(key, pystac.Asset(href, media_type=pystac.MediaType.COG,
                                             roles=["data"], extra_fields=extra))  # fmt: skip
        item.add_asset("thumbnail", pystac.Asset("thumb.png", media_type="image/png",
                                                 roles=["thumbnail"]))  # fmt: skip
        items.append(item.to_dict(transform_hrefs=False))
    return items


def write_collection(path: Path, items: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


def stac_spec(path: Path, **kw) -> RasterSpec:
    return RasterSpec(layout="stac", path=str(path), **kw)


def test_stac_item_collection_relative_hrefs_and_eo_band_names(tmp_path):
    files = band_folder(tmp_path / "b")
    path = write_collection(tmp_path / "stac" / "items.json", stac_items(files, tmp_path / "stac"))
    stack = open_source(stac_spec(path.relative_to(tmp_path), scale=1e-4), root=tmp_path)
    # "red" is earth-search's key for B04; "B8" is nir (B08) by its eo:bands name
    assert [d.isoformat() for d in stack.dates] == DATES and stack.band_names == ["B04", "B08"]
    assert stack.crs.to_wkt() == file_wkt(files / "S_red_2020-01-05.tif")
    assert stack.transform == GRID and stack.crs.to_epsg() is None
    named = open_source(stac_spec(path, bands=BANDS, scale=1e-4))  # nir: the eo:bands name
    for t in range(len(DATES)):
        np.testing.assert_allclose(named.read(t, PREP), expected(t), rtol=1e-6)
    win = named.windows(5)[1]
    np.testing.assert_allclose(named.read(0, PREP, win), expected(0)[:, 5:], rtol=1e-6)


def test_stac_catalog_saved_by_pystac(tmp_path):
    files = band_folder(tmp_path / "b")
    cat = pystac.Catalog("sinu", "synthetic band files")
    for d in stac_items(files, tmp_path):
        item = pystac.Item.from_dict(d)
        for asset in item.assets.values():
            asset.href = str((tmp_path / asset.href).resolve())
        cat.add_item(item)
    cat.normalize_hrefs(str(tmp_path / "catalog"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    stack = open_source(stac_spec(tmp_path / "catalog" / "catalog.json", bands=["nir", "red"]))
    assert [d.isoformat() for d in stack.dates] == DATES
    np.testing.assert_allclose(stack.read(1, PREP), expected(1, 1.0), rtol=1e-6)


def _stac_no_asset(items: list[dict]) -> None:
    del items[0]["assets"]["red"]


def _stac_remote(items: list[dict]) -> None:
    items[0]["assets"]["red"]["href"] = "https://nowhere.invalid/red.tif"


def _stac_missing_file(items: list[dict]) -> None:
    items[0]["assets"]["red"]["href"] = "nowhere/S_red.tif"


def _stac_no_datetime(items: list[dict]) -> None:
    items[0]["properties"]["datetime"] = None


@pytest.mark.parametrize(
    ("damage", "named", "fragment"),
    [
        (_stac_no_asset, "items.json", "item 'S_2020-02-06' lacks band(s) B04"),
        (_stac_remote, "red.tif", "cannot open raster (CURL error"),  # no such host
        (_stac_missing_file, "S_red.tif", "asset 'red' not found"),
        (_stac_no_datetime, "items.json", "datetime"),
    ],
)
def test_stac_rejects_bad_input(tmp_path, damage, named, fragment):
    items = stac_items(band_folder(tmp_path / "b"), tmp_path / "stac")
    damage(items)
    path = write_collection(tmp_path / "stac" / "items.json", items)
    assert_input_error(lambda: open_source(stac_spec(path)), Path(named), fragment)


def test_stac_rejects_unreadable_json(tmp_path):
    path = tmp_path / "items.json"
    path.write_text("{not json")
    assert_input_error(lambda: open_source(stac_spec(path)), path, "not a readable STAC JSON")
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    assert_input_error(lambda: open_source(stac_spec(path)), path, "no items")


# --- datacube ---------------------------------------------------------------------------------


def synthetic_cube(variant: str) -> xr.Dataset:
    """The band-folder values as a cube; dates stored newest first to check sorting."""
    order = list(reversed(range(len(DATES))))
    data = np.stack([np.stack([dn(t, b) for b in range(len(BANDS))]) for t in order])
    data[:, :, 0, :2] = np.nan  # as in the band folder: NaN in either band masks the pixel
    data[:, 0, 0, 1] = 0.0
    data[:, 1, 0, 0] = 0.0
    rows, cols = SHAPE
    x = GRID.c + GRID.a * (np.arange(cols) + 0.5)
    y = GRID.f + GRID.e * (np.arange(rows) + 0.5)
    if variant == "y-up":
        y, data = y[::-1], data[:, :, ::-1]
    coords = {"time": pd.to_datetime([DATES[t] for t in order]), "y": y, "x": x}
    attrs = {"scale_factor": 1e-4, "_FillValue": np.float32(np.nan), "grid_mapping": "spatial_ref"}
    if variant == "per-band":
        ds = xr.Dataset({b: (("time", "y", "x"), data[:, j], attrs) for j, b in enumerate(BANDS)},
                        coords=coords)  # fmt: skip
    else:
        ds = xr.Dataset({"refl": (("time", "band", "y", "x"), data, attrs)},
                        coords={**coords, "band": np.array(BANDS, object)})  # fmt: skip
    gm = {"crs_wkt": SINU.to_wkt()}
    if variant == "geotransform":
        gm["GeoTransform"] = " ".join(str(v) for v in GRID.to_gdal())
        ds = ds.drop_vars(["x", "y"])
    return ds.assign(spatial_ref=xr.DataArray(0, attrs=gm))


def write_cube(ds: xr.Dataset, path: Path) -> Path:
    for var in ds.data_vars.values():  # attributes as written, no CF re-encoding by xarray
        var.encoding = {"_FillValue": var.attrs.pop("_FillValue", None)}
    if path.suffix == ".zarr":
        ds.to_zarr(path, mode="w", consolidated=False)
    else:
        ds.to_netcdf(path, engine="netcdf4")
    return path


def cube_spec(path: Path, **kw) -> RasterSpec:
    return RasterSpec(layout="datacube", path=str(path), **kw)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("variant", ["band-dim", "per-band", "y-up", "geotransform"])
def test_datacube_netcdf_and_zarr(tmp_path, suffix, variant):
    path = write_cube(synthetic_cube(variant), tmp_path / f"cube{suffix}")
    stack = open_source(cube_spec(path.name, nodata=0.0), root=tmp_path)
    assert [d.isoformat() for d in stack.dates] == DATES and stack.band_names == BANDS
    assert stack.crs.to_wkt() == SINU.to_wkt() and stack.crs.to_epsg() is None
    assert stack.transform.almost_equals(GRID, precision=1e-6)
    assert (stack.height, stack.width) == SHAPE
    for t in range(len(DATES)):
        want = expected(t)
        want[:, 0, :2] = np.nan  # the zeros: the spec's nodata
        np.testing.assert_allclose(stack.read(t, PREP), want, rtol=1e-6)
    win = stack.windows(4)[1]
    np.testing.assert_allclose(stack.read(1, PREP, win), expected(1)[:, 4:], rtol=1e-6)
    red = open_source(cube_spec(path, bands=["red"], scale=2e-4))
    got = red.read(0, Preparation(bands=["red"], quality_band=None))[0]
    assert got[0, 0] == 0 and np.isnan(got[0, 1])
    np.testing.assert_allclose(got[1:], dn(0, 1)[1:] * np.float32(2e-4), rtol=1e-6)


def _cube_no_crs(ds: xr.Dataset) -> xr.Dataset:
    return ds.drop_vars("spatial_ref")


def _cube_irregular(ds: xr.Dataset) -> xr.Dataset:
    return ds.assign_coords(x=ds.x.values + np.r_[0, 0, 0, 7, 0, 0, 0, 0])


def _cube_dup_time(ds: xr.Dataset) -> xr.Dataset:
    return ds.assign_coords(time=pd.to_datetime([DATES[0], DATES[1], DATES[0]]))


def _cube_no_time(ds: xr.Dataset) -> xr.Dataset:
    return ds.rename({"time": "when"})


def _cube_int_time(ds: xr.Dataset) -> xr.Dataset:
    return ds.assign_coords(time=[3, 2, 1])


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (_cube_no_crs, "no CRS"),
        (_cube_irregular, "not regularly spaced"),
        (_cube_dup_time, "duplicate time step 2020-01-05"),
        (_cube_no_time, "needs time, y and x"),
        (_cube_int_time, "is not a date"),
    ],
)
def test_datacube_rejects_bad_input(tmp_path, damage, fragment):
    path = write_cube(damage(synthetic_cube("band-dim")), tmp_path / "cube.nc")
    assert_input_error(lambda: open_source(cube_spec(path)), path, fragment)


@pytest.mark.parametrize("name", ["cube.nc", "cube.zarr"])
def test_datacube_rejects_corrupt_store(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".zarr"):
        path.mkdir()
        (path / "zarr.json").write_text("{broken")
    else:
        path.write_bytes(b"CDF\x01 truncated netCDF")
    assert_input_error(lambda: open_source(cube_spec(path)), path, "cannot open data cube")
    assert_input_error(lambda: open_source(cube_spec(tmp_path / "x.nc")), Path("x.nc"), "not found")


def test_sinop_same_values_through_stac_netcdf_and_zarr(sinop, tmp_path):
    """One real cube, four layouts: the same dates, CRS (custom WKT) and values."""
    s = dict(scale=1e-4, bands=["NDVI", "EVI"])
    ref = open_source(RasterSpec(layout="band-date-pattern", path=str(sinop), pattern=SINOP_PATTERN,
                                 **s))  # fmt: skip
    wkt = file_wkt(sinop / "MODIS_Sinop_NDVI_2013-09-14.tif")
    items, arrays = [], []
    for day in ref.dates:
        item = pystac.Item(f"sinop-{day}", None, None, pd.Timestamp(day).to_pydatetime(), {})
        layers = []
        for band in ("NDVI", "EVI"):
            f = sinop / f"MODIS_Sinop_{band}_{day}.tif"
            item.add_asset(band, pystac.Asset(f.as_uri(), media_type=pystac.MediaType.GEOTIFF))
            with rasterio.open(f) as src:
                layers.append(src.read(1))
        items.append(item.to_dict(transform_hrefs=False))
        arrays.append(np.stack(layers))
    stac = write_collection(tmp_path / "sinop.json", items)
    t = ref.transform
    ds = xr.Dataset(
        {"index": (("time", "band", "y", "x"), np.stack(arrays), {"grid_mapping": "spatial_ref"})},
        coords={
            "time": pd.to_datetime(ref.dates), "band": np.array(["NDVI", "EVI"], object),
            "y": t.f + t.e * (np.arange(ref.height) + 0.5),
            "x": t.c + t.a * (np.arange(ref.width) + 0.5),
        },
    ).assign(spatial_ref=xr.DataArray(0, attrs={"crs_wkt": wkt}))  # fmt: skip
    others = [
        open_source(RasterSpec(layout="stac", path=str(stac), **s)),
        open_source(cube_spec(write_cube(ds.copy(), tmp_path / "sinop.nc"), **s)),
        open_source(cube_spec(write_cube(ds.copy(), tmp_path / "sinop.zarr"), **s)),
    ]
    prep = Preparation(bands=["NDVI", "EVI"], quality_band=None)
    want = [ref.read(i, prep) for i in (0, 11, 22)]
    for stack in others:
        assert stack.dates == ref.dates and stack.crs.to_wkt() == wkt
        assert stack.transform.almost_equals(ref.transform, precision=1e-6)
        for i, w in zip((0, 11, 22), want, strict=True):
            np.testing.assert_array_equal(stack.read(i, prep), w)
