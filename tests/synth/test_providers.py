"""Provider-shaped STAC items of a synthetic region: shapes, pixels, COGs, bytes, HTTP ranges."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import jsonschema
import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from http_server import serve_folder
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import reproject
from rasterio.windows import Window
from shapely.geometry import shape

from cropmeta.errors import InputError
from cropmeta.synth import make_world
from cropmeta.synth.providers import OTHER_ZONE_DATE, split_dates, write_provider_items

REGION = "brandenburg"
SIZE = 256  # px: big enough for several 128 px COG blocks and overviews
BLOCK = 128
BASE = "http://127.0.0.1:9/region/"
ES_BANDS = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "swir16": "B11",
    "swir22": "B12",
}
ES_KEYS = {*ES_BANDS, "scl", "aot", "wvp", "visual", "thumbnail"} | {
    "granule_metadata",
    "tileinfo_metadata",
}
PC_BANDS = {*ES_BANDS.values()}
PC_KEYS = (
    PC_BANDS
    | {"SCL", "AOT", "WVP", "visual", "preview"}
    | {
        "safe-manifest",
        "granule-metadata",
        "inspire-metadata",
        "product-metadata",
        "datastrip-metadata",
    }
)
WORLD = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
GDAL_HTTP = dict(
    GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
    CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif",
    CPL_VSIL_CURL_CHUNK_SIZE=4096,
    GDAL_INGESTED_BYTES_AT_OPEN=4096,
    GDAL_HTTP_MAX_RETRY=0,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("providers")


@pytest.fixture(scope="module")
def s2_world(root: Path) -> Path:
    return make_world(root / "world", seed=0, regions=[REGION], tile_size=SIZE, scale="tiny")


@pytest.fixture(scope="module")
def es(s2_world: Path, root: Path) -> Path:
    return write_provider_items(s2_world, REGION, root / "es", "earth-search", blocksize=BLOCK)


@pytest.fixture(scope="module")
def pc(s2_world: Path, root: Path) -> Path:
    return write_provider_items(s2_world, REGION, root / "pc", "planetary-computer", blocksize=128)


def _features(items: Path) -> list[dict]:
    return json.loads(items.read_text())["features"]


def _world_tiles(s2_world: Path) -> list[Path]:
    return sorted((s2_world.parent / REGION / "tiles").glob("*.tif"))


def _by_date(features: list[dict]) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for f in features:
        out[f["properties"]["datetime"][:10]].append(f)
    return dict(sorted(out.items()))


def _read(items: Path, asset: dict) -> np.ndarray:
    with rasterio.open(items.parent / asset["href"]) as src:
        return src.read(1)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _means(dn: np.ndarray, scl: np.ndarray, f: int) -> np.ndarray:
    """An independent f×f block mean of valid DNs, rounded half up, 0 where the block's
    top-left SCL is no data (full blocks only)."""
    h, w = dn.shape[0] // f * f, dn.shape[1] // f * f
    blocks = dn[:h, :w].reshape(h // f, f, w // f, f).astype(float)
    count = (blocks > 0).sum(axis=(1, 3))
    mean = np.floor(blocks.sum(axis=(1, 3)) / np.maximum(count, 1) + 0.5)
    return np.where(scl[:h:f, :w:f] != 0, mean, 0)


def test_earth_search_keys_and_fields(es: Path) -> None:
    for f in _features(es):
        props, assets = f["properties"], f["assets"]
        assert set(assets) == ES_KEYS and f["collection"] == "sentinel-2-l2a"
        assert props["platform"] in ("sentinel-2a", "sentinel-2b")
        assert props["constellation"] == "sentinel-2" and props["proj:epsg"] in (32632, 32633)
        tile = f"{props['mgrs:utm_zone']}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
        assert props["grid:code"] == f"MGRS-{tile}" and f["id"].split("_")[1] == tile
        assert props["s2:processing_baseline"] == "05.09"
        assert props["earthsearch:boa_offset_applied"] is False
        assert 0 <= props["eo:cloud_cover"] <= 100
        assert any("raster/v1.1.0" in e for e in f["stac_extensions"])
        for key, band in ES_BANDS.items():
            a = assets[key]
            assert a["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
            assert a["roles"] == ["data", "reflectance"] and a["href"].endswith(f"/{band}.tif")
            assert a["eo:bands"][0]["name"] == key and a["gsd"] in (10, 20, 60)
            rb = a["raster:bands"][0]
            assert (rb["nodata"], rb["data_type"], rb["scale"], rb["offset"]) == (
                0,
                "uint16",
                0.0001,
                -0.1,
            )
            assert rb["spatial_resolution"] == a["gsd"] == a["proj:transform"][0]
        assert assets["nir08"]["gsd"] == 20 and assets["coastal"]["gsd"] == 60
        assert assets["scl"]["raster:bands"] == [
            {"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}
        ]
        assert assets["thumbnail"]["type"] == "image/jpeg"
        assert assets["visual"]["roles"] == ["visual"]
        for key in ("blue", "nir08", "scl", "coastal"):  # proj:* describe the file
            with rasterio.open(es.parent / assets[key]["href"]) as src:
                assert list(src.shape) == assets[key]["proj:shape"]
                assert list(src.transform)[:6] == assets[key]["proj:transform"]
                assert src.crs.to_epsg() == props["proj:epsg"]
                assert src.dtypes[0] == assets[key]["raster:bands"][0]["data_type"]
                assert src.scales == (1.0,) and src.offsets == (0.0,)  # only the item says


def test_planetary_computer_keys_and_fields(pc: Path) -> None:
    features = _features(pc)
    for f in features:
        props, assets = f["properties"], f["assets"]
        assert set(assets) == PC_KEYS
        assert props["platform"] in ("Sentinel-2A", "Sentinel-2B")
        assert props["s2:mgrs_tile"] in f["id"] and props["s2:processing_baseline"] == "05.09"
        assert not any("raster:bands" in a for a in assets.values())  # PC gives no scale/offset
        for band in PC_BANDS:
            a = assets[band]
            assert a["eo:bands"][0]["name"] == band and a["roles"] == ["data"]
            assert a["proj:bbox"][0] == a["proj:transform"][2]
            assert a["href"].endswith(f"_{band}_{a['gsd']}m.tif")
        assert assets["B8A"]["eo:bands"][0]["common_name"] == "rededge"
        assert "common_name" not in assets["B09"]["eo:bands"][0]
        assert assets["SCL"]["gsd"] == 20.0 and assets["AOT"]["gsd"] == 10.0
        assert assets["preview"]["roles"] == ["thumbnail"]
    meta = pc.parent / features[0]["assets"]["product-metadata"]["href"]
    assert meta.read_text().count('<BOA_ADD_OFFSET band_id="') == 13
    assert "-1000</BOA_ADD_OFFSET>" in meta.read_text()


def test_pystac_reads_both_and_items_are_geojson(es: Path, pc: Path) -> None:
    schema_dir = Path(pystac.__file__).parent / "validation" / "jsonschemas" / "geojson"
    feature_schema = json.loads((schema_dir / "Feature.json").read_text())
    for items in (es, pc):
        collection = pystac.ItemCollection.from_file(str(items))
        assert len(collection) == len(_features(items)) > 10
        for item in collection:
            assert item.datetime is not None and item.datetime.tzinfo is not None
            assert shape(item.geometry).is_valid and item.bbox[0] < item.bbox[2]
        for f in _features(items):
            jsonschema.validate(f, feature_schema)


def test_10m_bands_are_the_world_and_coarser_bands_block_means(es: Path, s2_world: Path) -> None:
    dates = _by_date(_features(es))
    for tile, (day, items) in zip(_world_tiles(s2_world), dates.items(), strict=True):
        assert tile.stem.split("_")[2] == day.replace("-", "")
        with rasterio.open(tile) as src:
            world = src.read()
        scl = world[10]
        a = items[0]["assets"]  # the whole width, or the first tile: columns from 0
        cols = a["blue"]["proj:shape"][1]
        for key in ("blue", "green", "red", "nir"):
            np.testing.assert_array_equal(
                _read(es, a[key]), world[WORLD.index(ES_BANDS[key]), :, :cols]
            )
        for key in ("rededge1", "nir08", "swir22"):
            want = _means(world[WORLD.index(ES_BANDS[key]), :, :cols], scl[:, :cols], 2)
            np.testing.assert_array_equal(_read(es, a[key]), want)
        np.testing.assert_array_equal(_read(es, a["scl"]), scl[::2, :cols:2])
        coastal = _read(es, a["coastal"])  # a stand-in: 6×6 means of B02
        want = _means(world[0, :, :cols], scl[:, :cols], 6)
        np.testing.assert_array_equal(coastal[: want.shape[0], : want.shape[1]], want)


def test_reference_layout_matches_the_cogs(es: Path, s2_world: Path) -> None:
    tiles = _world_tiles(s2_world)
    reference = sorted((es.parent / "reference").glob("*.tif"))
    assert [p.name for p in reference] == [p.name for p in tiles]
    first = _by_date(_features(es))
    for ref_path, tile, items in zip(reference, tiles, first.values(), strict=True):
        with rasterio.open(ref_path) as ref, rasterio.open(tile) as src:
            assert ref.profile["width"] == src.width and ref.descriptions == src.descriptions
            assert ref.scales == src.scales and ref.offsets == src.offsets
            assert ref.tags()["ACQUISITION_DATE"] == src.tags()["ACQUISITION_DATE"]
            assert ref.tags(1)["BOA_ADD_OFFSET"] == "-1000"
            data, world = ref.read(), src.read()
        for i, band in enumerate(WORLD):
            if band in ("B02", "B03", "B04", "B08"):
                np.testing.assert_array_equal(data[i], world[i])
        a = items[0]["assets"]
        cols = a["blue"]["proj:shape"][1]
        for key, index in (("rededge2", 4), ("swir16", 8), ("scl", 10)):
            coarse = _read(es, a[key])
            nearest = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:, :cols]
            np.testing.assert_array_equal(data[index, :, :cols], nearest)


def test_split_dates_mosaic_and_one_other_utm_zone(es: Path, pc: Path, s2_world: Path) -> None:
    for items in (es, pc):
        dates = _by_date(_features(items))
        days = list(dates)
        split = [i for i, d in enumerate(days) if len(dates[d]) == 2]
        assert split == split_dates(len(days)) and OTHER_ZONE_DATE in split
        assert all(len(dates[d]) in (1, 2) for d in days)
        whole = shape(dates[days[0]][0]["geometry"])
        for i in split:
            a, b = dates[days[i]]
            assert a["id"] != b["id"]
            ga, gb = shape(a["geometry"]), shape(b["geometry"])
            assert ga.intersects(gb) and 0.1 < ga.intersection(gb).area / whole.area < 0.4
            assert 0.5 < ga.area / whole.area < 0.7
            assert abs(ga.union(gb).area / whole.area - 1) < 1e-3
            epsg = (a["properties"]["proj:epsg"], b["properties"]["proj:epsg"])
            assert (epsg[0] != epsg[1]) == (i == OTHER_ZONE_DATE), (i, epsg)
    # the first tile and the second (same zone) agree where they overlap, and with the world
    dates = _by_date(_features(es))
    day = list(dates)[split_dates(len(dates))[0]]
    a, b = (f["assets"] for f in dates[day])
    assert a["blue"]["proj:transform"][5] == b["blue"]["proj:transform"][5]
    off = round((b["blue"]["proj:transform"][2] - a["blue"]["proj:transform"][2]) / 10)
    overlap = a["blue"]["proj:shape"][1] - off
    np.testing.assert_array_equal(_read(es, a["red"])[:, off:], _read(es, b["red"])[:, :overlap])
    np.testing.assert_array_equal(
        _read(es, a["swir16"])[:, off // 2 :], _read(es, b["swir16"])[:, : overlap // 2]
    )
    # the other zone's tile, warped back by nearest neighbour, matches the reference's SCL
    day = list(dates)[OTHER_ZONE_DATE]
    other = dates[day][1]["assets"]["scl"]
    ref_path = es.parent / "reference" / _world_tiles(s2_world)[OTHER_ZONE_DATE].name
    with rasterio.open(es.parent / other["href"]) as src, rasterio.open(ref_path) as ref:
        truth = ref.read(11)[::2, ::2].astype(np.uint8)
        back = np.zeros_like(truth)
        transform = ref.transform @ Affine.scale(2)
        reproject(
            src.read(1), back, src_transform=src.transform, src_crs=src.crs, dst_crs=ref.crs,
            dst_transform=transform, resampling=Resampling.nearest, src_nodata=0, dst_nodata=0,
        )  # fmt: skip
        assert src.crs.to_epsg() == 32632 and ref.crs.to_epsg() == 32633
    covered = back != 0
    assert covered.sum() > 0.3 * covered.size
    assert (back[covered] == truth[covered]).mean() > 0.9


def test_assets_are_cloud_optimized_geotiffs(es: Path, pc: Path) -> None:
    f = _features(es)[0]
    for key in ("blue", "nir08", "scl", "coastal", "visual", "aot"):
        with rasterio.open(es.parent / f["assets"][key]["href"]) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.block_shapes[0] == (BLOCK, BLOCK)  # rasterio calls one block "not tiled"
            assert src.nodata == 0 and src.compression.name.lower() == "deflate"
            if key == "blue":
                assert src.profile["tiled"] and src.overviews(1) == [2]
    preview = pc.parent / _features(pc)[0]["assets"]["preview"]["href"]
    with rasterio.open(preview) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.count == 3
        assert src.res == (320.0, 320.0)


def test_same_bytes_again_hrefs_under_base_and_ranges_over_http(
    es: Path, s2_world: Path, root: Path
) -> None:
    served = root / "served"
    served.mkdir()
    with serve_folder(served) as server:
        base = server.url + "es/"
        again = write_provider_items(
            s2_world, REGION, served / "es", "earth-search", base_href=base, blocksize=BLOCK
        )
        old, new = _hashes(es.parent), _hashes(again.parent)
        assert old.keys() == new.keys()
        assert {k for k in old if old[k] != new[k]} == {"items.json"}
        one, two = _features(es), _features(again)
        for f, g in zip(one, two, strict=True):
            for key, asset in g["assets"].items():
                assert asset["href"] == base + f["assets"][key]["href"]
        assert json.dumps(one) == json.dumps(two).replace(base, "")

        asset = two[0]["assets"]["blue"]
        rel = asset["href"].removeprefix(server.url)
        with rasterio.Env(**GDAL_HTTP), rasterio.open("/vsicurl/" + asset["href"]) as src:
            window = Window(BLOCK, BLOCK, BLOCK, BLOCK)
            remote = src.read(1, window=window)
        with rasterio.open(again.parent / rel.removeprefix("es/")) as src:
            np.testing.assert_array_equal(remote, src.read(1, window=window))
        size = (served / rel).stat().st_size
        assert server.count(path=rel, status=206) >= 1
        assert server.count(path=rel, status=200, method="GET") == 0
        assert 0 < server.sent(rel) < size / 2 and server.range_requests >= 1


def test_server_ranges_and_simulated_failures(es: Path) -> None:
    rel = _features(es)[0]["assets"]["nir"]["href"]
    data = (es.parent / rel).read_bytes()

    def fetch(url: str, method: str = "GET", **headers: str):
        return urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers))

    with serve_folder(es.parent) as server:
        url = server.url + rel
        with fetch(url, Range="bytes=10-19") as r:
            assert r.status == 206 and r.read() == data[10:20]
            assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
            assert r.headers["Accept-Ranges"] == "bytes"
        with fetch(url, Range="bytes=-5") as r:
            assert r.read() == data[-5:]
        with fetch(url, "HEAD") as r:
            assert r.status == 200 and int(r.headers["Content-Length"]) == len(data)
            assert r.read() == b""
        with pytest.raises(urllib.error.HTTPError) as err:
            fetch(url, Range=f"bytes={len(data)}-")
        assert err.value.code == 416
        server.fail(rel, 403)
        server.fail("missing.tif", 404)
        for path, code in ((rel, 403), ("missing.tif", 404), ("nowhere/x.tif", 404)):
            with pytest.raises(urllib.error.HTTPError) as err:
                fetch(server.url + path)
            assert err.value.code == code
        with rasterio.Env(**GDAL_HTTP), pytest.raises(RasterioIOError, match="403"):
            rasterio.open("/vsicurl/" + url)
        other = _features(es)[0]["assets"]["red"]["href"]
        server.truncate(other, 5000)
        with fetch(server.url + other) as r:
            assert r.read() == (es.parent / other).read_bytes()[:5000]
        truncated = "/vsicurl/" + server.url + other
        with (
            rasterio.Env(**GDAL_HTTP),
            pytest.raises(RasterioIOError),
            rasterio.open(truncated) as src,
        ):
            src.read()
        assert server.count(status=403) >= 2 and server.count(path="missing.tif") == 1
        assert server.range_requests >= 3


def test_earth_search_with_the_offset_removed(es: Path, s2_world: Path, root: Path) -> None:
    items = write_provider_items(
        s2_world, REGION, root / "es-boa", "earth-search", boa_offset_applied=True, blocksize=BLOCK
    )
    f = _features(items)[0]
    assert f["properties"]["earthsearch:boa_offset_applied"] is True
    assert f["assets"]["blue"]["raster:bands"][0]["offset"] == -0.1  # as earth-search says
    with rasterio.open(_world_tiles(s2_world)[0]) as src:
        world = src.read(1)
    want = np.where(world > 0, np.maximum(world.astype(int) - 1000, 1), 0)
    np.testing.assert_array_equal(_read(items, f["assets"]["blue"]), want)
    np.testing.assert_array_equal(_read(items, f["assets"]["scl"]), _read(es, f["assets"]["scl"]))
    ref = {k: v for k, v in _hashes(items.parent).items() if k.startswith("reference")}
    assert ref == {k: v for k, v in _hashes(es.parent).items() if k.startswith("reference")}


def test_bad_requests_are_input_errors(s2_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cases = [
        (dict(provider="usgs"), "unknown provider"),
        (dict(provider="earth-search", base_href="127.0.0.1/x"), "must be a URL"),
        (dict(provider="planetary-computer", boa_offset_applied=True), "only earth-search"),
        (dict(provider="earth-search", blocksize=100), "multiple of 16"),
        (dict(provider="earth-search", region="atlantis"), "no region named"),
    ]
    for kwargs, fragment in cases:
        args = dict(region=REGION) | kwargs
        with pytest.raises(InputError, match=fragment):
            write_provider_items(s2_world, out=out, **args)
        assert not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("not cropmeta's")
    with pytest.raises(InputError, match="give --overwrite"):
        write_provider_items(s2_world, REGION, out, "earth-search")
    assert (out / "mine.txt").read_text() == "not cropmeta's"


def test_cli_synth_as_earth_search(cli, tmp_path: Path) -> None:
    out = tmp_path / "w"
    args = ["--out", out, "--scale", "tiny", "--region", "nebraska", "--tile-size", "64"]
    res = cli("synth", *args, "--as", "earth-search")
    assert res.exit_code == 0, res.output
    items = out / "nebraska" / "stac-earth-search" / "items.json"
    assert f"nebraska as earth-search: {items}" in res.stdout
    collection = pystac.ItemCollection.from_file(str(items))
    tiles = sorted((out / "nebraska" / "tiles").glob("*.tif"))
    assert len(collection) == len(tiles) + len(split_dates(len(tiles)))
    assert sorted(p.name for p in (items.parent / "reference").glob("*.tif")) == [
        p.name for p in tiles
    ]
    assert "catalog.yaml" in {p.name for p in out.iterdir()}
