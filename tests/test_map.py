"""`cropmeta map`: a real GeoTIFF with the tiles' grid, class codes named in its metadata."""

import numpy as np
import pytest
import rasterio
from checks import assert_one_line_error

from cropmeta.adapt.adapt import adapt_region


@pytest.fixture(scope="module")
def adapted(meta_model, regions, catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapted") / "model"
    adapt_region(meta_model, regions[catalog.targets()[0].name], out, shots=3, seed=0)
    return out


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

    crop_map = map_region(adapted, catalog.path(catalog.targets()[0].tiles), tmp_path / "m.tif")
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
    a = map_region(adapted, tiles, tmp_path / "a.tif", block=32)
    b = map_region(adapted, tiles, tmp_path / "b.tif", block=256)
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
