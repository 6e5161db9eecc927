"""The ``stac`` layout on items shaped like the providers' (earth-search, Planetary Computer):
the same pixels as the per-date layout of the same data, locally and over HTTP, and one-line
errors for what goes wrong with remote items."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from http_server import serve_folder
from rasterio.transform import array_bounds
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.prepare import Preparation
from cropmeta.ingest.preprocess import preprocess_region
from cropmeta.ingest.sources import Extent, StacStack, open_source, pin_grid
from cropmeta.synth import make_world
from cropmeta.synth.providers import OTHER_ZONE_DATE, write_provider_items

REGION = "brandenburg"
SIZE = 128
WORLD = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
TEN_M = ("B02", "B03", "B04", "B08")
PREP = Preparation(bands=list(WORLD), quality_band="SCL")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stac-world")
    return make_world(root / "world", seed=1, regions=[REGION], tile_size=SIZE, scale="tiny")


@pytest.fixture(scope="module")
def written(world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each provider's items (and earth-search's with the +1000 DN removed) of one region."""
    root = tmp_path_factory.mktemp("stac-items")
    out = {
        name: write_provider_items(world, REGION, root / name, provider, blocksize=128, **kw)
        for name, provider, kw in (
            ("earth-search", "earth-search", {}),
            ("planetary-computer", "planetary-computer", {}),
            ("offset-removed", "earth-search", {"boa_offset_applied": True}),
        )
    }
    return out


def reference(items: Path) -> tuple[StacStack, Extent]:
    """The per-date layout of the same pixels, and its extent."""
    ref = open_source(RasterSpec(path=str(items.parent / "reference")))
    return ref, Extent(array_bounds(ref.height, ref.width, ref.transform), ref.crs)


def assert_same_pixels(stack, ref, bands=WORLD, atol=0.0) -> None:
    """Every date equal to the reference (within ``atol``), but the one whose second tile lies
    in the other UTM zone (warped there and back: close, not equal)."""
    prep = Preparation(bands=list(bands), quality_band="SCL")
    assert stack.dates == ref.dates and (stack.width, stack.height) == (ref.width, ref.height)
    assert stack.transform == ref.transform and stack.crs == ref.crs
    for i in range(len(ref.dates)):
        got, want = stack.read(i, prep), ref.read(i, prep)
        if i == OTHER_ZONE_DATE:
            both = ~np.isnan(got) & ~np.isnan(want)
            assert both.mean() > 0.9 and np.median(np.abs(got - want)[both]) < 0.01
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=str(ref.dates[i]))


@pytest.mark.parametrize("name", ["earth-search", "planetary-computer", "offset-removed"])
def test_provider_items_read_as_the_per_date_layout(written, name):
    """20 m bands resampled by nearest neighbour equal the reference exactly: keys resolved
    (case-insensitive), same-day tiles mosaicked, the other zone reprojected, and the
    processing-baseline offset applied exactly once whether it sits in raster:bands
    (earth-search), in the processing baseline (Planetary Computer) or was removed from the
    pixels (earth-search's boa_offset_applied)."""
    items = written[name]
    ref, extent = reference(items)
    spec = RasterSpec(layout="stac", path=str(items), resampling="nearest")
    stack = open_source(spec, extent=extent)
    assert stack.band_names == [*WORLD, "SCL"]
    # DN × 0.0001 where the offset was removed from the pixels, DN × 0.0001 − 0.1 where not:
    # the same reflectance, up to float32 rounding
    assert_same_pixels(stack, ref, atol=1e-7 if name == "offset-removed" else 0.0)


def test_default_resampling_is_bilinear_and_keys_are_names(written):
    """By default 20 m reflectance is resampled bilinearly (close to the reference) and SCL by
    nearest neighbour (equal); a spec may name bands by provider key, any case."""
    items = written["earth-search"]
    ref, extent = reference(items)
    spec = RasterSpec(layout="stac", path=str(items), bands=["RED", "nir08", "B11"])
    stack = open_source(spec, extent=extent)
    assert stack.band_names == ["B04", "B8A", "B11", "SCL"]
    assert stack.asset_keys == {"B04": ["red"], "B8A": ["nir08"], "B11": ["swir16"], "SCL": ["scl"]}
    prep = Preparation(bands=["red", "NIR08", "B11"], quality_band="scl")
    for i in range(len(ref.dates)):
        if i == OTHER_ZONE_DATE:
            continue
        got = stack.read(i, prep)
        want = ref.read(i, Preparation(bands=["B04", "B8A", "B11"], quality_band="SCL"))
        np.testing.assert_array_equal(got[0], want[0])  # 10 m: as stored
        both = ~np.isnan(got[1:]) & ~np.isnan(want[1:])
        assert both.sum() >= 0.95 * (~np.isnan(want[1:])).sum()  # the same clouds masked
        assert 0 < np.mean(np.abs(got[1:] - want[1:])[both]) < 0.02  # interpolated, not copied


def test_preprocess_stac_gives_the_per_date_series(written, world, tmp_path):
    """preprocess on the items (on a grid from the labels' extent) gives the series that the
    per-date layout of the same pixels gives, and records the grid and the assets read. The
    date with a tile in the other UTM zone is left out of both (warped there and back, its
    pixels are close, not equal)."""
    items = written["planetary-computer"]
    doc = json.loads(items.read_text())
    other = sorted({f["properties"]["datetime"][:10] for f in doc["features"]})[OTHER_ZONE_DATE]
    doc["features"] = [f for f in doc["features"] if f["properties"]["datetime"][:10] != other]
    kept = items.parent / "kept.json"
    kept.write_text(json.dumps(doc))
    tiles = tmp_path / "reference"
    shutil.copytree(items.parent / "reference", tiles)
    (gone,) = tiles.glob(f"*{other.replace('-', '')}*")
    gone.unlink()
    labels = world.parent / REGION / "fields.gpkg"
    spec = RasterSpec(layout="stac", path=str(kept), resampling="nearest")
    stac = preprocess_region(spec, labels, "kultur", tmp_path / "stac.zarr", seed=0)
    per_date = preprocess_region(tiles, labels, "kultur", seed=0)
    assert list(stac.sample.values) == list(per_date.sample.values)
    np.testing.assert_array_equal(stac.x.values, per_date.x.values)
    raster = json.loads(stac.attrs["provenance"])["raster"]
    assert raster["crs"] == "EPSG:32633" and raster["resolution"] == 10.0
    assert raster["assets"]["B8A"] == ["B8A"] and len(raster["bounds"]) == 4


def test_items_and_assets_over_http(written, tmp_path):
    """The items served over HTTP (absolute hrefs under the server's URL) read as the local
    ones, by range requests: no file travels whole."""
    items = written["earth-search"]
    served = tmp_path / "served"
    shutil.copytree(items.parent, served / "es")
    with serve_folder(served) as server:
        doc = json.loads((served / "es" / "items.json").read_text())
        for feature in doc["features"]:
            for asset in feature["assets"].values():
                asset["href"] = server.url + "es/" + asset["href"]
        (served / "es" / "remote.json").write_text(json.dumps(doc))
        ref, extent = reference(items)
        spec = RasterSpec(layout="stac", path=server.url + "es/remote.json", resampling="nearest")
        stack = open_source(spec, extent=extent)
        assert stack.source_files == []  # nothing local to sign
        assert_same_pixels(stack, ref)
        assert server.count(status=206) > 0 and server.count(status=200, method="GET") <= 1


def one_line_error(call, fragment: str, named: str) -> None:
    """``call`` raises an InputError of one line naming ``named`` and saying ``fragment``."""
    with pytest.raises(InputError) as err:
        call()
    text = str(err.value)
    assert "\n" not in text and fragment in text and named in text, text


def _other_zone(feature: dict) -> bool:
    return feature["properties"].get("proj:epsg", feature["properties"].get("proj:code")) not in (
        32633, "EPSG:32633"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("failure", "fragment", "zone"),
    [("403", "HTTP response code: 403", "same"), ("404", "HTTP response code: 404", "same"),
     ("truncated", "damaged or truncated", "same"), ("unreachable", "cannot read", "same"),
     ("404", "HTTP response code: 404", "other")],
)  # fmt: skip
def test_remote_read_failures_name_the_asset(written, tmp_path, failure, fragment, zone):
    """An asset that fails is named, whether its day is read directly (on the grid) or through
    odc-stac (a tile in the other UTM zone, warped)."""
    items = written["earth-search"]
    served = tmp_path / "served"
    shutil.copytree(items.parent, served / "es")
    doc = json.loads((served / "es" / "items.json").read_text())
    with serve_folder(served) as server:
        url = server.url if failure != "unreachable" else "http://127.0.0.1:9/"
        hit = next(f for f in doc["features"] if _other_zone(f) == (zone == "other"))
        victim = hit["assets"]["red"]["href"]
        for feature in doc["features"]:
            for asset in feature["assets"].values():
                asset["href"] = (
                    (url if asset["href"] == victim else server.url) + "es/" + asset["href"]
                )
        (served / "es" / "remote.json").write_text(json.dumps(doc))
        if failure == "truncated":
            server.truncate("es/" + victim, (served / "es" / victim).stat().st_size // 2)
        elif failure != "unreachable":
            server.fail("es/" + victim, int(failure))
        ref, extent = reference(items)
        spec = RasterSpec(layout="stac", path=server.url + "es/remote.json")
        stack = open_source(spec, extent=extent)
        date = OTHER_ZONE_DATE if zone == "other" else 0
        assert (date in stack.direct) == (zone == "same")
        one_line_error(lambda: stack.read(date, PREP), fragment, victim)


def _mixed_baselines(doc: dict) -> None:
    """One of two same-day tiles from before processing baseline 04.00 (no +1000 DN)."""
    days = [f["properties"]["datetime"][:10] for f in doc["features"]]
    twice = next(f for f, d in zip(doc["features"], days, strict=True) if days.count(d) == 2)
    twice["properties"]["s2:processing_baseline"] = "03.01"


def _band_missing(doc: dict) -> None:
    del doc["features"][3]["assets"]["B05"]


def _same_band_twice(doc: dict) -> None:
    doc["features"][0]["assets"]["red-copy"] = {
        **doc["features"][0]["assets"]["B04"],
        "eo:bands": [{"name": "B04", "common_name": "red"}],
    }


@pytest.mark.parametrize(
    ("damage", "spec", "fragment"),
    [
        (_mixed_baselines, {}, "different scale/offset"),
        (_band_missing, {}, "lacks band(s) B05"),
        (_same_band_twice, {}, "assets 'B04' and 'red-copy' both hold band B04"),
        (None, {"bands": ["B04", "ndvi"]}, "band 'ndvi' matches no asset"),
        (None, {"crs": "EPSG:notacode"}, "--crs 'EPSG:notacode' is not a CRS"),
        (
            None,
            {"bounds": (0.0, 0.0, 10.0, 10.0), "crs": "EPSG:32633"},
            "no item overlaps the area to read",
        ),
    ],
)
def test_bad_items_are_refused_in_one_line(written, tmp_path, damage, spec, fragment):
    items = written["planetary-computer"]
    doc = json.loads(items.read_text())
    if damage is not None:
        damage(doc)
    path = items.parent / f"damaged-{tmp_path.name}.json"
    path.write_text(json.dumps(doc))
    _, extent = reference(items)
    spec = RasterSpec(layout="stac", path=str(path), **spec)
    one_line_error(lambda: open_source(spec, extent=extent), fragment, path.name)


def test_items_far_from_the_labels_and_unreachable_items_are_refused(written, tmp_path):
    items = written["earth-search"]
    far = Extent((500000.0, 100000.0, 501000.0, 101000.0), rasterio.crs.CRS.from_epsg(32633))
    spec = RasterSpec(layout="stac", path=str(items))
    one_line_error(lambda: open_source(spec, extent=far), "no item overlaps the area", "items")
    with serve_folder(tmp_path) as server:
        server.fail("items.json", 404)
        spec = RasterSpec(layout="stac", path=server.url + "items.json")
        one_line_error(lambda: open_source(spec), "not a readable STAC JSON", "items.json")


def test_a_stac_api_search_over_the_labels_reads_every_page(written, tmp_path):
    """A STAC API item-search URL (collections and dates, no bbox) is searched over the area
    read — here the reference's extent, in `preprocess` the labels' — every page followed
    (pystac-client), and reads as the same items saved to a file; a search that finds nothing,
    or a URL with a parameter the search does not know, is refused in one line."""
    items = written["earth-search"]
    served = tmp_path / "served"
    shutil.copytree(items.parent, served / "es")
    with serve_folder(served) as server:
        doc = json.loads((served / "es" / "items.json").read_text())
        far = json.loads(json.dumps(doc["features"][0]))
        far["id"], far["bbox"] = "far-away", [100.0, 10.0, 100.1, 10.1]  # never searched up
        for feature in doc["features"]:
            for asset in feature["assets"].values():
                asset["href"] = server.url + "es/" + asset["href"]
        server.stac_api([*doc["features"], far], page_size=4)
        ref, extent = reference(items)
        dates = f"{ref.dates[0]}/{ref.dates[-1]}T23:59:59Z"
        url = f"{server.url}search?collections=sentinel-2-l2a&datetime={dates}"
        spec = RasterSpec(layout="stac", path=url, resampling="nearest")
        stack = open_source(spec, extent=extent)
        assert_same_pixels(stack, ref)
        searched = server.searches[0]
        assert searched["collections"] == "sentinel-2-l2a" and "bbox" in searched
        west, south, east, north = (float(v) for v in searched["bbox"].split(","))
        assert 12 < west < east < 15 and 50 < south < north < 54  # the extent, in degrees
        assert len(server.searches) == -(-len(doc["features"]) // 4)  # every page, once
        pinned = open_source(pin_grid(spec, stack))  # a map worker: the grid, no labels
        assert (pinned.transform, pinned.dates) == (stack.transform, stack.dates)
        nothing = RasterSpec(layout="stac", path=url.replace("sentinel-2-l2a", "landsat-c2-l2"))
        one_line_error(lambda: open_source(nothing, extent=extent), "found no items", "search")
        odd = RasterSpec(layout="stac", path=url + "&cloudy=no")
        one_line_error(lambda: open_source(odd, extent=extent), "unknown search param", "search")
        for tail, fragment in (
            ("&bbox=1,2,three,4", "must be numbers"),
            ("&bbox=1,2,3", "west,south,east,north"),
            ("&limit=many", "must be numbers"),
            ("&datetime=yesterday", "the item search failed"),
        ):
            bad = RasterSpec(layout="stac", path=url.split("&datetime")[0] + tail)
            one_line_error(lambda b=bad: open_source(b, extent=extent), fragment, "search")


# --- Landsat Collection 2 Level-2 ------------------------------------------------------------

LANDSAT_KEYS = {"blue": "B02", "green": "B03", "red": "B04", "nir08": "B8A", "swir16": "B11",
                "swir22": "B12"}  # fmt: skip
CLEAR, CLOUD, SHADOW, FILL = 21824, 21824 | 1 << 3, 21824 | 1 << 4, 1  # QA_PIXEL values
L_GRID = rasterio.transform.from_origin(600000.0, 4500000.0, 30.0, 30.0)
LON_LAT = transform_bounds("EPSG:32614", "EPSG:4326", *array_bounds(16, 16, L_GRID))


def landsat_scene(t: int) -> tuple[np.ndarray, np.ndarray]:
    """Surface reflectance (6, 16, 16) and QA_PIXEL (16, 16) of date ``t``: a cloud, its
    shadow and a filled border column."""
    rng = np.random.default_rng(t)
    refl = rng.uniform(0.02, 0.45, (6, 16, 16))
    qa = np.full((16, 16), CLEAR, np.uint16)
    qa[2:5, 3 + t : 7 + t], qa[8:10, 2:4], qa[:, 15] = CLOUD, SHADOW, FILL
    return refl, qa


def landsat_items(root: Path, raster_bands: bool) -> Path:
    """Landsat 8 C2 L2 items as earth-search's and the Planetary Computer's ``landsat-c2-l2``
    write them (common-name keys, ``qa_pixel``; scale 0.0000275 and offset −0.2 in
    ``raster:bands`` unless ``raster_bands`` is False), one GeoTIFF per asset."""
    features = []
    for t, day in enumerate(("2023-05-03", "2023-05-19", "2023-06-04")):
        refl, qa = landsat_scene(t)
        dn = np.where(qa == FILL, 0, np.round((refl + 0.2) / 2.75e-5)).astype(np.uint16)
        item_id = f"LC08_L2SP_029032_{day.replace('-', '')}_02_T1"
        assets = {}
        for key, values in [*zip(LANDSAT_KEYS, dn, strict=True), ("qa_pixel", qa)]:
            href = f"{item_id}/{item_id}_{key.upper()}.TIF"
            (root / item_id).mkdir(parents=True, exist_ok=True)
            profile = dict(width=16, height=16, count=1, dtype="uint16", crs="EPSG:32614")
            with rasterio.open(root / href, "w", transform=L_GRID, **profile) as dst:
                dst.write(values, 1)
            meta = {"nodata": 1, "data_type": "uint16"} if key == "qa_pixel" else {
                "nodata": 0, "data_type": "uint16", "scale": 2.75e-05, "offset": -0.2}  # fmt: skip
            assets[key] = {
                "href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"] if key != "qa_pixel" else ["cloud", "data"],
                "eo:bands": [] if key == "qa_pixel" else [{"name": key, "common_name": key}],
                **({"raster:bands": [meta]} if raster_bands else {}),
            }  # fmt: skip
        assets["thumbnail"] = {"href": f"{item_id}/thumb.jpg", "type": "image/jpeg",
                               "roles": ["thumbnail"]}  # fmt: skip
        features.append({
            "type": "Feature", "stac_version": "1.0.0", "id": item_id,
            "collection": "landsat-c2-l2",
            "geometry": mapping(box(*LON_LAT)), "bbox": list(LON_LAT), "links": [],
            "properties": {"datetime": f"{day}T17:04:12Z", "platform": "landsat-8",
                           "instruments": ["oli", "tirs"], "proj:epsg": 32614,
                           "landsat:collection_category": "T1", "landsat:wrs_path": "029"},
            "assets": assets,
        })  # fmt: skip
    path = root / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def landsat_per_date(items: Path, out: Path) -> Path:
    """The items' pixels in the per-date layout: one 7-band GeoTIFF per date, bands named as
    the reader names them, the surface reflectance scale and offset in the file's metadata."""
    out.mkdir()
    for feature in json.loads(items.read_text())["features"]:
        keys = [*LANDSAT_KEYS, "qa_pixel"]
        bands = []
        for key in keys:
            with rasterio.open(items.parent / feature["assets"][key]["href"]) as src:
                bands.append(src.read(1))
        day = feature["properties"]["datetime"][:10]
        profile = dict(width=16, height=16, count=7, dtype="uint16", crs="EPSG:32614", nodata=0)
        with rasterio.open(out / f"LC08_{day}.tif", "w", transform=L_GRID, **profile) as dst:
            dst.write(np.stack(bands))
            dst.descriptions = (*LANDSAT_KEYS.values(), "QA_PIXEL")
            dst.scales, dst.offsets = (2.75e-5,) * 6 + (1.0,), (-0.2,) * 6 + (0.0,)
    return out


@pytest.mark.parametrize("raster_bands", [True, False])
def test_landsat_collection_2_scaled_and_masked_by_qa_pixel(tmp_path, raster_bands):
    """Landsat's keys resolve to the Sentinel-2 bands of the same wavelengths; surface
    reflectance is DN × 0.0000275 − 0.2 (from raster:bands, else the USGS constants); the fill,
    cloud and shadow bits of QA_PIXEL mask pixels, exactly as in the per-date layout of the same
    pixels, and preprocess picks QA_PIXEL and records its bits."""
    items = landsat_items(tmp_path / "ls", raster_bands)
    stack = open_source(RasterSpec(layout="stac", path=str(items)))
    assert stack.band_names == ["B02", "B03", "B04", "B8A", "B11", "B12", "QA_PIXEL"]
    assert stack.asset_keys["B8A"] == ["nir08"] and stack.transform == L_GRID
    prep = Preparation(
        bands=["blue", "green", "red", "nir08", "swir16", "swir22"], quality_band="qa_pixel",
        invalid_classes=[], invalid_bits=[0, 1, 2, 3, 4, 5],
    )  # fmt: skip
    per_date = open_source(RasterSpec(path=str(landsat_per_date(items, tmp_path / "tiles"))))
    for t in range(3):
        refl, qa = landsat_scene(t)
        got = stack.read(t, prep)
        masked = qa != CLEAR
        assert np.isnan(got[:, masked]).all() and not np.isnan(got[:, ~masked]).any()
        np.testing.assert_allclose(got[:, ~masked], refl[:, ~masked], atol=1.5e-5)
        named = prep.model_copy(
            update={"bands": [*LANDSAT_KEYS.values()], "quality_band": "QA_PIXEL"}
        )
        np.testing.assert_array_equal(got, per_date.read(t, named))  # the same pixels

    fields = tmp_path / "fields.gpkg"
    x0, y0 = L_GRID.c, L_GRID.f
    polys = [box(x0 + 30, y0 - 450, x0 + 200, y0 - 300), box(x0 + 240, y0 - 200, x0 + 420, y0 - 30)]
    gpd.GeoDataFrame({"crop": ["maize", "soybean"]}, geometry=polys, crs="EPSG:32614").to_file(
        fields
    )
    ds = preprocess_region(RasterSpec(layout="stac", path=str(items)), fields, "crop", seed=0)
    preparation = json.loads(ds.attrs["preparation"])
    assert preparation["quality_band"] == "QA_PIXEL" and preparation["invalid_bits"] == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]


def test_cli_preprocess_of_remote_items_fails_in_one_line_and_writes_nothing(
    cli, written, world, tmp_path
):
    items = written["earth-search"]
    served = tmp_path / "served"
    shutil.copytree(items.parent, served / "es")
    doc = json.loads((served / "es" / "items.json").read_text())
    with serve_folder(served) as server:
        for feature in doc["features"]:
            for asset in feature["assets"].values():
                asset["href"] = server.url + "es/" + asset["href"]
        (served / "es" / "remote.json").write_text(json.dumps(doc))
        victim = doc["features"][2]["assets"]["swir16"]["href"]
        server.fail(victim.removeprefix(server.url), 404)
        out = tmp_path / "region.zarr"
        res = cli(
            "preprocess", "--layout", "stac", "--tiles", server.url + "es/remote.json",
            "--labels", world.parent / REGION / "fields.gpkg", "--label-column", "kultur",
            "--out", out,
        )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "HTTP response code: 404" in res.stderr and victim in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not out.exists()


def test_cli_crs_only_with_stac(cli, written, world, tmp_path):
    out = tmp_path / "region.zarr"
    res = cli(
        "preprocess", "--tiles", written["earth-search"].parent / "reference", "--crs",
        "EPSG:32633", "--labels", world.parent / REGION / "fields.gpkg", "--label-column",
        "kultur", "--out", out,
    )  # fmt: skip
    assert res.exit_code == 2 and "only with --layout stac" in res.output and not out.exists()
