"""`cropmeta map`: a real GeoTIFF with the tiles' grid, class codes named in its metadata."""

import numpy as np
import pytest
import rasterio
from checks import assert_one_line_error


def test_map_matches_tiles_and_documents_codes(cli, adapted, catalog, tmp_path):
    tiles = catalog.path(catalog.targets()[0].tiles)
    out = tmp_path / "map.tif"
    res = cli("map", "--model", adapted, "--tiles", tiles, "--out", out, "--block", "64")
    assert res.exit_code == 0, res.output
    with rasterio.open(next(tiles.glob("*.tif"))) as ref, rasterio.open(out) as m:
        assert m.crs == ref.crs and m.transform == ref.transform
        assert (m.width, m.height, m.count) == (ref.width, ref.height, 1)
        assert m.dtypes[0] == "uint8" and m.nodata == 0
        data = m.read(1)
        tags = m.tags()
        cmap = m.colormap(1)
    codes = {int(k.split("_")[1]): v for k, v in tags.items() if k.startswith("CLASS_")}
    assert len(codes) >= 2
    present = set(np.unique(data)) - {0}
    assert present and present <= set(codes)
    assert all(cmap[c][3] == 255 for c in codes)
    assert (data > 0).mean() > 0.5  # most pixels have enough clear observations


def test_preview_png_and_bad_input(cli, adapted, catalog, tmp_path):
    from cropmeta.mapping.crop_map import map_region

    crop_map = map_region(
        adapted, catalog.path(catalog.targets()[0].tiles), tmp_path / "m.tif"
    ).path
    res = cli("preview", crop_map, "--out", tmp_path / "m.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    not_a_map = tmp_path / "x.tif"
    not_a_map.write_text("plain text")
    res = cli("preview", not_a_map, "--out", tmp_path / "x.png")
    assert res.exit_code == 2 and "not a readable GeoTIFF" in res.stderr
    assert not (tmp_path / "x.png").exists()


def test_map_is_block_size_independent(adapted, catalog, tmp_path):
    from cropmeta.mapping.crop_map import map_region

    tiles = catalog.path(catalog.targets()[0].tiles)
    a = map_region(adapted, tiles, tmp_path / "a.tif", block=32).path
    b = map_region(adapted, tiles, tmp_path / "b.tif", block=256).path
    with rasterio.open(a) as ra, rasterio.open(b) as rb:
        np.testing.assert_array_equal(ra.read(1), rb.read(1))


def test_map_missing_tiles(cli, adapted, tmp_path):
    out = tmp_path / "m.tif"
    assert_one_line_error(
        cli("map", "--model", adapted, "--tiles", tmp_path / "no", "--out", out),
        out,
        "tile folder not found",
    )


def test_map_needs_adapted_model(cli, meta_model, catalog, tmp_path):
    out = tmp_path / "m.tif"
    tiles = catalog.path(catalog.targets()[0].tiles)
    assert_one_line_error(
        cli("map", "--model", meta_model, "--tiles", tiles, "--out", out), out, "not adapted"
    )


def test_map_tiles_without_a_model_band(cli, adapted, catalog, tmp_path):
    tiles = catalog.path(catalog.targets()[0].tiles)
    stripped = tmp_path / "tiles"
    stripped.mkdir()
    for src_path in sorted(tiles.glob("*.tif"))[:3]:
        with rasterio.open(src_path) as src:
            profile = src.profile | {"count": 2}
            with rasterio.open(stripped / src_path.name, "w", **profile) as dst:
                dst.write(src.read([1, 2]))
                dst.descriptions = src.descriptions[:2]
    out = tmp_path / "m.tif"
    assert_one_line_error(
        cli("map", "--model", adapted, "--tiles", stripped, "--out", out), out, "band 'B04' missing"
    )


def test_map_tiles_outside_the_season(cli, adapted, catalog, tmp_path):
    tiles = catalog.path(catalog.targets()[0].tiles)
    winter = tmp_path / "tiles"
    winter.mkdir()
    for day, src_path in zip(("01", "11", "21"), sorted(tiles.glob("*.tif")), strict=False):
        name = src_path.name.replace(src_path.name.split("_")[2], f"202312{day}")
        (winter / name).write_bytes(src_path.read_bytes())
    out = tmp_path / "m.tif"
    assert_one_line_error(
        cli("map", "--model", adapted, "--tiles", winter, "--out", out),
        out,
        "no acquisition inside the model's season",
    )


def test_map_tiles_with_another_crs_on_one_date(cli, adapted, catalog, tmp_path):
    import shutil

    tiles = catalog.path(catalog.targets()[0].tiles)
    mixed = tmp_path / "tiles"
    shutil.copytree(tiles, mixed)
    odd = sorted(mixed.glob("*.tif"))[2]
    with rasterio.open(odd, "r+") as dst:
        dst.crs = "EPSG:3857"
    out = tmp_path / "m.tif"
    res = cli("map", "--model", adapted, "--tiles", mixed, "--out", out)
    assert_one_line_error(res, out, "CRS differs from the first date")
    assert odd.name in res.stderr


@pytest.mark.parametrize(
    ("width", "height", "block"), [(100, 70, 32), (64, 64, 64), (17, 300, 256)]
)
def test_blocks_cover_the_raster_once(width, height, block):
    from cropmeta.mapping.blocks import MapJob

    job = MapJob("m", "{}", width, height, block, 1)
    cover = np.zeros((height, width), int)
    for i in range(job.n_blocks):
        rows, cols = job.window(i).toslices()
        cover[rows, cols] += 1
    assert (cover == 1).all()


def test_a_datacube_of_the_same_acquisitions_maps_to_the_same_bytes(adapted, catalog, tmp_path):
    """`map` reads every layout preprocess reads through the same preparation: the tiles
    rewritten as a Zarr cube (one variable per band, CF scale/offset) give the same map."""
    import pandas as pd
    import xarray as xr

    from cropmeta.catalog import RasterSpec
    from cropmeta.ingest.sources import open_raster
    from cropmeta.mapping.crop_map import map_region

    tiles = catalog.path(catalog.targets()[0].tiles)
    stack = open_raster(tiles)
    data = {}
    for path in sorted(tiles.glob("*.tif")):  # one file per date, in date order
        with rasterio.open(path) as src:
            for j, name in enumerate(src.descriptions):
                data.setdefault(name, []).append(src.read(j + 1))
            scales, offsets, nodata = src.scales, src.offsets, src.nodata
    variables = {}
    for j, (name, layers) in enumerate(data.items()):
        attrs = {"scale_factor": scales[j], "add_offset": offsets[j], "grid_mapping": "spatial_ref"}
        variables[name] = xr.Variable(("time", "y", "x"), np.stack(layers), attrs)
        variables[name].encoding = {"_FillValue": np.uint16(nodata)}
    gm = {
        "crs_wkt": stack.crs.to_wkt(),
        "GeoTransform": " ".join(map(str, stack.transform.to_gdal())),
    }
    cube = xr.Dataset(variables, coords={"time": pd.to_datetime(stack.dates)}).assign(
        spatial_ref=xr.DataArray(0, attrs=gm)
    )
    cube.to_zarr(tmp_path / "cube.zarr", mode="w", consolidated=False)

    by_tiles = map_region(adapted, tiles, tmp_path / "a" / "map.tif", workers=1).path
    spec = RasterSpec(layout="datacube", path=str(tmp_path / "cube.zarr"))
    by_cube = map_region(adapted, spec, tmp_path / "b" / "map.tif", workers=1).path
    assert by_tiles.read_bytes() == by_cube.read_bytes()
