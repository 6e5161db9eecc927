"""Tests of the synthetic world: real files round-trip, determinism and crop/cloud realism."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from cropmeta.catalog import Catalog, load_catalog
from cropmeta.errors import InputError
from cropmeta.synth import REGION_NAMES, make_world
from cropmeta.taxonomy import load_taxonomy

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
SCL_CODES = {0, 3, 4, 5, 6, 8, 9, 10, 11}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_world(tmp_path_factory.mktemp("synth") / "world", seed=0, scale="tiny")


@pytest.fixture(scope="module")
def catalog(world: Path) -> Catalog:
    return load_catalog(world)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _date(path: Path) -> dt.date:
    return dt.datetime.strptime(path.stem.split("_")[2], "%Y%m%d").date()


def _tiles(catalog: Catalog, region: str) -> list[Path]:
    return sorted(catalog.path(catalog.region(region).tiles).glob("*.tif"))


@pytest.fixture(scope="module")
def stacks(catalog: Catalog) -> dict[str, dict]:
    """Per region: day of year, reflectance, SCL, and a raster of shared crop codes."""
    taxonomy = load_taxonomy()
    out = {}
    for entry in catalog.regions:
        files = _tiles(catalog, entry.name)
        arrays, doy = [], []
        for f in files:
            with rasterio.open(f) as src:
                arrays.append(src.read().astype(np.float32))
                scale, offset = np.array(src.scales[:10]), np.array(src.offsets[:10])
                transform, shape = src.transform, src.shape
            doy.append(_date(f).timetuple().tm_yday)
        data = np.stack(arrays)
        refl = data[:, :10] * scale[None, :, None, None] + offset[None, :, None, None]
        fields = gpd.read_file(catalog.path(entry.labels), layer="fields")
        codes = [taxonomy.resolve(x).code for x in fields[entry.label_column]]
        crop = rasterize(
            zip(fields.geometry, codes, strict=True),
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="int32",
        )
        out[entry.name] = {"doy": np.array(doy), "refl": refl, "scl": data[:, 10], "crop": crop}
    return out


def _ndvi_by_date(stack: dict, code: int) -> dict[int, float]:
    """Median NDVI of clear (SCL 4/5) pixels of one crop, per day of year with enough pixels."""
    red, nir = stack["refl"][:, 2], stack["refl"][:, 6]
    ndvi = (nir - red) / (nir + red + 1e-6)
    out = {}
    for t, doy in enumerate(stack["doy"]):
        m = np.isin(stack["scl"][t], (4, 5)) & (stack["crop"] == code)
        if m.sum() >= 30:
            out[int(doy)] = float(np.median(ndvi[t][m]))
    return out


def test_catalog_lists_three_sources_and_two_targets(catalog: Catalog) -> None:
    assert [r.name for r in catalog.regions] == REGION_NAMES
    assert len(catalog.sources()) == 3 and len(catalog.targets()) == 2
    assert all(r.id_column == "field_id" for r in catalog.regions)
    assert catalog.load_taxonomy().name == load_taxonomy().name


def test_tiles_round_trip(catalog: Catalog) -> None:
    epsgs, calendars = set(), {}
    for entry in catalog.regions:
        files = _tiles(catalog, entry.name)
        assert 10 <= len(files) <= 14
        for f in files:
            assert f.name == f"S2_{entry.name.upper()}_{_date(f):%Y%m%d}_L2A.tif"
            with rasterio.open(f) as src:
                assert src.crs.to_epsg() == int(entry.crs.split(":")[1])
                assert 32601 <= src.crs.to_epsg() <= 32660
                assert src.res == (10.0, 10.0) and src.transform.e < 0
                assert src.count == 11 and set(src.dtypes) == {"uint16"}
                assert src.descriptions == (*BANDS, "SCL")
                assert src.scales == (0.0001,) * 10 + (1.0,)
                assert src.offsets == (-0.1,) * 10 + (0.0,)
                assert src.nodata == 0
                assert src.profile["tiled"] and src.block_shapes[0] == (256, 256)
                assert src.compression.name.lower() == "deflate"
                assert src.tags()["ACQUISITION_DATE"] == _date(f).isoformat()
                assert src.tags()["SPACECRAFT"] in ("Sentinel-2A", "Sentinel-2B")
                assert src.tags(1)["BOA_ADD_OFFSET"] == "-1000"
                data = src.read()
            assert set(np.unique(data[10])) <= SCL_CODES
            nodata = data[10] == 0
            assert (data[:10, nodata] == 0).all() and (data[:10, ~nodata] > 0).all()
            epsgs.add(src.crs.to_epsg())
        days = [_date(f) for f in files]
        gaps = {(b - a).days for a, b in zip(days, days[1:], strict=False)}
        assert len(gaps) > 1 and min(gaps) >= 5  # irregular, on the 5-day grid or coarser
        calendars[entry.name] = tuple(days)
    assert len(epsgs) == 5  # one UTM zone per region
    assert len(set(calendars.values())) == 5  # each region has its own calendar


def test_fields_round_trip(catalog: Catalog, stacks: dict[str, dict]) -> None:
    taxonomy = load_taxonomy()
    for entry in catalog.regions:
        fields = gpd.read_file(catalog.path(entry.labels), layer="fields")
        with rasterio.open(_tiles(catalog, entry.name)[0]) as src:
            assert fields.crs == src.crs
            transform, shape = src.transform, src.shape
        assert {"field_id", entry.label_column, "area_ha"} <= set(fields.columns)
        assert fields["field_id"].is_unique
        assert (fields.geom_type == "Polygon").all()
        np.testing.assert_allclose(fields["area_ha"], fields.area / 1e4, rtol=1e-6)
        classes = [taxonomy.resolve(x) for x in fields[entry.label_column]]
        assert all(c is not None for c in classes)
        assert len({c.code for c in classes}) >= 6
        ids = rasterize(
            zip(fields.geometry, fields["field_id"], strict=True),
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="int32",
        )
        counts = np.bincount(ids.ravel(), minlength=int(fields["field_id"].max()) + 1)
        assert counts[fields["field_id"].to_numpy()].min() >= 20
        # the image was drawn from these polygons: on the clearest date, which field a pixel
        # belongs to explains most of the NDVI variance of field pixels
        stack = stacks[entry.name]
        clear = np.isin(stack["scl"], (4, 5)) & (ids > 0)
        t = int(np.argmax(clear.sum(axis=(1, 2))))
        red, nir = stack["refl"][t, 2][clear[t]], stack["refl"][t, 6][clear[t]]
        ndvi, owner = (nir - red) / (nir + red), ids[clear[t]]
        means = np.bincount(owner, ndvi) / np.maximum(np.bincount(owner), 1)
        assert np.var(means[owner]) / np.var(ndvi) > 0.7, entry.name


def test_same_seed_same_bytes_and_regions_independent(world: Path, tmp_path: Path) -> None:
    root = world.parent
    again = make_world(tmp_path / "again", seed=0, scale="tiny").parent
    assert _hashes(again) == _hashes(root)
    other = make_world(tmp_path / "other", seed=1, scale="tiny").parent
    changed = {k for k, v in _hashes(other).items() if _hashes(root).get(k) != v}
    assert any(k.endswith("fields.gpkg") for k in changed)
    assert sum(k.endswith(".tif") for k in changed) >= 5
    alone = make_world(tmp_path / "alone", seed=0, regions=["nebraska"], scale="tiny").parent
    mine = {k: v for k, v in _hashes(root).items() if k.startswith("nebraska")}
    assert {k: v for k, v in _hashes(alone).items() if k.startswith("nebraska")} == mine


def test_maize_is_bare_in_spring_and_green_in_summer(stacks: dict[str, dict]) -> None:
    spring, summer = [], []
    for stack in stacks.values():
        for doy, value in _ndvi_by_date(stack, 1).items():
            if doy < 120:
                spring.append(value)
            elif 196 <= doy <= 240:
                summer.append(value)
    assert spring and summer
    assert max(spring) < 0.4
    assert min(summer) > 0.6


def test_winter_wheat_peaks_before_maize(stacks: dict[str, dict]) -> None:
    # pooled over regions: with ~12 dates, one region's summer may be all clouds
    wheat = [item for s in stacks.values() for item in _ndvi_by_date(s, 2).items()]
    maize = [item for s in stacks.values() for item in _ndvi_by_date(s, 1).items()]
    peak_wheat = max(wheat, key=lambda item: item[1])[0]
    peak_maize = max(maize, key=lambda item: item[1])[0]
    assert 100 <= peak_wheat <= 170 < 180 <= peak_maize <= 260


def test_cloud_pixels_are_brighter_than_clear_pixels(stacks: dict[str, dict]) -> None:
    blue_cloud, blue_clear = [], []
    for stack in stacks.values():
        b02, scl = stack["refl"][:, 0], stack["scl"]
        blue_cloud.append(b02[np.isin(scl, (8, 9))])
        blue_clear.append(b02[np.isin(scl, (4, 5))])
    cloud, clear = np.concatenate(blue_cloud), np.concatenate(blue_clear)
    assert cloud.size > 1000
    assert cloud.mean() > clear.mean() + 0.15
    assert np.percentile(cloud, 10) > np.percentile(clear, 90)


def test_tile_size_switch_and_replacing_out(tmp_path: Path) -> None:
    out = tmp_path / "w"
    out.mkdir()
    (out / "stale.txt").write_text("not written by cropmeta")
    with pytest.raises(InputError, match="give --overwrite"):  # not a world cropmeta wrote
        make_world(out, seed=3, regions=["poltava"], tile_size=200)
    assert (out / "stale.txt").read_text() == "not written by cropmeta"
    calls = []
    path = make_world(
        out,
        seed=3,
        regions=["poltava"],
        tile_size=200,
        progress=lambda stage, done, total: calls.append((stage, done, total)),
        overwrite=True,
    )
    assert path == out / "catalog.yaml" and not (out / "stale.txt").exists()
    make_world(out, seed=3, regions=["poltava"], tile_size=200)  # its own world: replaced
    catalog = load_catalog(path)
    assert [r.name for r in catalog.regions] == ["poltava"]
    for f in _tiles(catalog, "poltava"):
        with rasterio.open(f) as src:
            assert (src.height, src.width) == (200, 200)
    assert calls and calls[-1][1] == calls[-1][2] == len(calls)


def test_unknown_region_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown region"):
        make_world(tmp_path / "w", regions=["brandenburg", "atlantis"], scale="tiny")
    assert not (tmp_path / "w").exists()
