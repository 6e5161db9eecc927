"""How `cropmeta map` fails and resumes: never from stale blocks, never leaving files behind.

A re-run resumes only when no input file changed (content signatures of every raster the stack
reads, of the polygon files, digests of the model files); a failed run removes its work folder
and reports one line naming the damaged file, whether the block ran here or on a Dask worker;
damaged weights and an unreachable scheduler are refused before anything is written. All
inputs are real files: copies of the tiny synthetic world's tiles and adapted model, damaged
or rewritten here.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from checks import assert_one_line_error

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.fileinfo import HEAD, PIECE, PIECES, sample_offsets, signature
from cropmeta.ingest.sources import datacube, open_raster
from cropmeta.mapping.crop_map import map_region
from cropmeta.mapping.work import MARKER

LAYERS = ("classes", "probabilities")


@pytest.fixture()
def tiles(catalog, tmp_path) -> Path:
    """A copy of the first target region's tiles, free to damage."""
    return Path(shutil.copytree(catalog.path(catalog.targets()[0].tiles), tmp_path / "tiles"))


@pytest.fixture()
def model(adapted, tmp_path) -> Path:
    """A copy of the adapted model, free to damage."""
    return Path(shutil.copytree(adapted, tmp_path / "model"))


def work_of(out: Path) -> Path:
    return out.with_name(f".{out.name}.cropmeta-work")


def nothing_left(out: Path) -> None:
    """No output, no work folder, no temporary file of ``out``."""
    assert not out.exists()
    assert not work_of(out).exists()
    assert not list(out.parent.glob(f".{out.name}.*"))


def in_season(tiles: Path) -> Path:
    """A tile every map reads (the middle date lies inside the model's season)."""
    paths = sorted(tiles.glob("*.tif"))
    return paths[len(paths) // 2]


def _map(model: Path, tiles: Path | RasterSpec, out: Path, **options):
    options = {"block": 16, "probabilities": True, "workers": 1, **options}
    return map_region(model, tiles, out, **options)


def interrupted(model: Path, tiles: Path, out: Path, after: int) -> int:
    """Start a map and stop it as Ctrl-C would once ``after`` blocks are stored; returns how
    many blocks its work folder holds."""

    def stop(done: int, total: int) -> None:
        if done >= after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _map(model, tiles, out, progress=stop)
    assert not out.exists()
    return len(os.listdir(work_of(out) / "done"))


def rewrite_in_place(tile: Path) -> None:
    """Write other pixel values into ``tile``: same name (date), grid, bands and metadata."""
    with rasterio.open(tile) as src:
        profile, data = src.profile, src.read()
        names, scales, offsets = src.descriptions, src.scales, src.offsets
    with rasterio.open(tile, "w", **profile) as dst:
        dst.write(data[:, ::-1, ::-1])  # the field pattern turned by 180°
        dst.descriptions, dst.scales, dst.offsets = names, scales, offsets


def same_outputs(a, b) -> None:
    for kind in LAYERS:
        assert a.outputs[kind].read_bytes() == b.outputs[kind].read_bytes(), kind


# --- resume keyed on the inputs' content ----------------------------------------------------


def test_signature_hashes_the_head_and_sixteen_evenly_spaced_pieces(tmp_path):
    size = 1 << 20
    offsets = sample_offsets(size)
    assert len(offsets) == PIECES and offsets[0] == 0 and offsets[-1] == size - PIECE
    assert np.all(np.diff(offsets) == (size - PIECE) // (PIECES - 1))
    assert sample_offsets(100) == [0] * PIECES  # a file shorter than a piece: read whole
    path = tmp_path / "f.bin"
    path.write_bytes(np.random.default_rng(0).bytes(size))
    before = signature(path)
    assert set(before) == {"size", "mtime_ns", "sha256"} and before["size"] == size

    def poke(at: int) -> dict:
        """Flip the byte at ``at``, keeping the size and restoring the modification time."""
        stat = path.stat()
        with path.open("r+b") as f:
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 0xFF]))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return signature(path)

    assert poke(HEAD - 1) != before  # in the first 64 KiB
    assert poke(HEAD - 1) == before  # flipped back: the same content again
    assert poke(offsets[7] + 100) != before  # in a sampled piece
    poke(offsets[7] + 100)
    assert poke(offsets[-1] + PIECE - 1) != before  # the last byte
    poke(offsets[-1] + PIECE - 1)
    unsampled = offsets[8] + PIECE + 10  # between two pieces: documented as not seen
    assert unsampled < offsets[9] and poke(unsampled) == before
    path.write_bytes(path.read_bytes())  # the same bytes rewritten: only the time differs
    assert signature(path)["sha256"] == before["sha256"]


def _geotiff(path: Path, values: np.ndarray, **tags) -> Path:
    transform = Affine(10.0, 0, 500_000.0, 0, -10.0, 4_000_000.0)
    with rasterio.open(
        path, "w", driver="GTiff", count=values.shape[0], width=values.shape[2],
        height=values.shape[1], dtype=values.dtype, crs="EPSG:32633", transform=transform,
    ) as dst:  # fmt: skip
        dst.write(values)
        dst.update_tags(**tags)
    return path


def test_every_layout_lists_the_files_it_reads(tmp_path, monkeypatch):
    days = ["2023-05-01", "2023-05-11"]
    values = np.arange(2 * 4 * 5, dtype="uint16").reshape(2, 4, 5)
    per_date = tmp_path / "per-date"
    per_date.mkdir()
    dated = [_geotiff(per_date / f"T_{d.replace('-', '')}.tif", values) for d in days]
    (per_date / "notes.txt").write_text("not a raster")
    assert open_raster(per_date).source_files == dated

    bands = tmp_path / "bands"
    bands.mkdir()
    files = {
        (d, b): _geotiff(bands / f"S_{b}_{d}.tif", values[:1]) for d in days for b in ("nir", "red")
    }
    pattern = RasterSpec(
        layout="band-date-pattern", path=str(bands), pattern=r"S_(?P<band>\w+?)_(?P<date>[\d-]+)"
    )
    assert open_raster(pattern).source_files == list(files.values())

    features = [
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": d,
            "geometry": None,
            "properties": {"datetime": f"{d}T10:00:00Z"},
            "links": [],
            "assets": {
                b: {"href": f"../bands/S_{b}_{d}.tif", "type": "image/tiff", "roles": ["data"]}
                for b in ("nir", "red")
            },
        }  # fmt: skip
        for d in days
    ]
    stac = tmp_path / "stac" / "items.json"
    stac.parent.mkdir()
    stac.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    listed = open_raster(RasterSpec(layout="stac", path=str(stac))).source_files
    assert listed == [stac.resolve(), *(p.resolve() for p in files.values())]

    cube = xr.Dataset(
        {"nir": (("time", "y", "x"), values.astype("float32"))},
        coords={"time": pd.to_datetime(days), "y": [5.0, 15, 25, 35][::-1], "x": np.arange(5.0)},
        attrs={"crs": "EPSG:32633"},
    )
    cube.to_netcdf(tmp_path / "cube.nc")
    nc = RasterSpec(layout="datacube", path=str(tmp_path / "cube.nc"))
    assert open_raster(nc).source_files == [tmp_path / "cube.nc"]
    store = tmp_path / "cube.zarr"
    cube.chunk({"time": 1, "y": 2, "x": 5}).to_zarr(store, consolidated=False)
    on_disk = sorted(p for p in store.rglob("*") if p.is_file())
    zarr_spec = RasterSpec(layout="datacube", path=str(store))
    assert sorted(open_raster(zarr_spec).source_files) == on_disk
    monkeypatch.setattr(datacube, "MAX_CHUNK_FILES", 3)  # a store too large to sign every chunk
    capped = open_raster(zarr_spec).source_files
    meta = {p for p in on_disk if p.name in datacube.ZARR_METADATA}
    assert meta and set(capped[: len(meta)]) == meta  # metadata: always, first
    chunks = capped[len(meta) :]
    assert len(chunks) == 3 == len(set(chunks)) and not meta & set(chunks)


@pytest.mark.slow
def test_a_tile_rewritten_in_place_is_not_resumed_and_an_untouched_one_is(
    model, tiles, catalog, tmp_path
):
    out = tmp_path / "run" / "map.tif"
    assert interrupted(model, tiles, out, after=5) == 5
    tile = in_season(tiles)
    before = tile.stat()
    rewrite_in_place(tile)
    os.utime(tile, ns=(before.st_atime_ns, before.st_mtime_ns))  # even with the old time
    fresh = _map(model, tiles, tmp_path / "fresh" / "map.tif")
    rerun = _map(model, tiles, out)
    assert rerun.reused == 0 and rerun.computed == rerun.blocks == fresh.blocks
    same_outputs(rerun, fresh)
    assert not work_of(out).exists()
    # the rewrite matters: the original tiles map otherwise, so stale blocks would show
    original = _map(model, catalog.path(catalog.targets()[0].tiles), tmp_path / "o" / "map.tif")
    with rasterio.open(original.path) as a, rasterio.open(fresh.path) as b:
        assert (a.read(1) != b.read(1)).mean() > 0.01

    # untouched since the interruption: the re-run resumes and still gives the same bytes
    out = tmp_path / "again" / "map.tif"
    assert interrupted(model, tiles, out, after=7) == 7
    resumed = _map(model, tiles, out)
    assert resumed.reused == 7 and resumed.computed == resumed.blocks - 7
    same_outputs(resumed, fresh)


@pytest.mark.slow
def test_changed_polygons_or_model_start_afresh(model, tiles, catalog, world, tmp_path):
    fields = tmp_path / "fields.gpkg"
    shutil.copy(world.parent / catalog.targets()[0].name / "fields.gpkg", fields)
    out = tmp_path / "a" / "map.tif"

    def stop(done: int, total: int) -> None:
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _map(model, tiles, out, fields=fields, progress=stop)
    gpd.read_file(fields).to_file(fields)  # the same polygons, written again
    assert _map(model, tiles, out, fields=fields).reused == 0

    out = tmp_path / "b" / "map.tif"
    interrupted(model, tiles, out, after=3)
    config = model / "config.json"
    config.write_text(config.read_text() + "\n")  # not the model files the run used
    assert _map(model, tiles, out).reused == 0


# --- no work folder left behind ------------------------------------------------------------


def damage(tile: Path, how: str) -> None:
    """Rewrite ``tile`` with 32-pixel blocks, its header and block index first (so that it
    still opens and its first blocks still read), then cut its second half off or replace it
    with garbage: the damage shows only when a later block is read."""
    copy = tile.parent.parent / f"{tile.stem}.copy"
    profile = {"tiled": True, "blockxsize": 32, "blockysize": 32, "compress": "deflate"}
    rasterio.shutil.copy(tile, copy, driver="GTiff", **profile)
    data = copy.read_bytes()
    copy.unlink()
    half = len(data) // 2
    tail = b"" if how == "truncated" else np.random.default_rng(1).bytes(len(data) - half)
    tile.write_bytes(data[:half] + tail)


@pytest.mark.parametrize("how", ["truncated", "garbage"])
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_damaged_tile_fails_naming_it_and_leaves_no_work_folder(
    model, tiles, tmp_path, how, workers
):
    tile = in_season(tiles)
    damage(tile, how)
    out = tmp_path / "maps" / "map.tif"
    seen = []

    def watch(done: int, total: int) -> None:
        seen.append((done, work_of(out).is_dir()))

    with pytest.raises(InputError) as err:
        _map(model, tiles, out, workers=workers, progress=watch)
    assert Path(err.value.path) == tile
    assert "cannot read raster" in err.value.problem
    assert seen and all(made for _, made in seen)  # the work folder existed during the run
    if workers == 1:
        assert max(done for done, _ in seen) >= 1  # blocks before the damage were stored
    nothing_left(out)
    assert not out.parent.exists()  # the folder made for the map went too


@pytest.mark.slow
def test_a_damaged_tile_read_on_dask_workers_is_one_line(model, tiles, tmp_path):
    tile = in_season(tiles)
    damage(tile, "truncated")
    out = tmp_path / "map.tif"
    args = ["map", "--model", model, "--tiles", tiles, "--out", out, "--block", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "cropmeta", *map(str, args), "--workers", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {tile}: cannot read raster"), lines
    nothing_left(out)


def test_a_work_folder_cropmeta_did_not_make_is_never_removed(cli, model, tiles, tmp_path):
    out = tmp_path / "map.tif"
    foreign = work_of(out)
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = cli("map", "--model", model, "--tiles", tiles, "--out", out, "--block", "64")
    assert_one_line_error(res, out, "is not a cropmeta work folder")
    assert str(foreign) in res.stderr and (foreign / "notes.txt").read_text() == "mine"
    shutil.rmtree(foreign)
    foreign.mkdir()  # a store cut short before run.json: cropmeta's, made afresh
    (foreign / MARKER).write_text("{}")
    res = cli("map", "--model", model, "--tiles", tiles, "--out", out, "--block", "64")
    assert res.exit_code == 0, res.output
    assert "resumed" not in res.stdout and not foreign.exists()


# --- unreachable scheduler -------------------------------------------------------------------


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line_before_any_work(cli, model, tiles, tmp_path):
    out = tmp_path / "maps" / "map.tif"
    start = time.monotonic()
    res = cli("map", "--model", model, "--tiles", tiles, "--out", out,
              "--scheduler", "tcp://127.0.0.1:1")  # fmt: skip
    assert time.monotonic() - start < 30
    assert_one_line_error(res, out, "error: --scheduler: cannot reach the Dask scheduler at")
    assert "tcp://127.0.0.1:1" in res.stderr
    nothing_left(out)
    assert not out.parent.exists()


@pytest.mark.slow
def test_preprocess_with_an_unreachable_scheduler_is_one_line(cli, world, catalog, tmp_path):
    out = tmp_path / "datasets"
    names = [r.name for r in catalog.regions[:2]]
    start = time.monotonic()
    res = cli("preprocess", "--catalog", world, "--region", names[0], "--region", names[1],
              "--out", out, "--scheduler", "tcp://127.0.0.1:1")  # fmt: skip
    assert time.monotonic() - start < 30
    assert_one_line_error(res, out, "error: --scheduler: cannot reach the Dask scheduler at")


# --- damaged weights -----------------------------------------------------------------------


class Trap:
    """Unpickling this creates ``path``: proof that a file was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _truncate(weights: Path, tmp_path: Path) -> None:
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])


def _flip_a_byte(weights: Path, tmp_path: Path) -> None:
    data = bytearray(weights.read_bytes())
    data[len(data) - 3] ^= 0x01  # in the last tensor's values: still a valid safetensors file
    weights.write_bytes(bytes(data))


def _pickle(weights: Path, tmp_path: Path) -> None:
    weights.write_bytes(pickle.dumps({"head.weight": Trap(tmp_path / "unpickled")}))


@pytest.mark.parametrize(
    ("damage_weights", "recorded", "fragment"),
    [
        (_truncate, True, "weights"),
        (_truncate, False, "weights"),
        (_flip_a_byte, True, "SHA-256"),  # only the recorded digest can tell
        (_pickle, True, "weights"),
        (_pickle, False, "weights"),
    ],
    ids=["truncated", "truncated-no-digest", "flipped-byte", "pickle", "pickle-no-digest"],
)
def test_damaged_weights_are_one_line_and_leave_nothing(
    cli, model, tiles, tmp_path, damage_weights, recorded, fragment
):
    """(``recorded=False``: a bundle written before the SHA-256 was recorded; its weights are
    then checked by reading them as safetensors, and a pickle is never unpickled.)"""
    weights = model / "model.safetensors"
    if not recorded:
        config = json.loads((model / "config.json").read_text())
        config.pop("weights_sha256")
        (model / "config.json").write_text(json.dumps(config))
    damage_weights(weights, tmp_path)
    out = tmp_path / "maps" / "map.tif"
    res = cli("map", "--model", model, "--tiles", tiles, "--out", out)
    assert_one_line_error(res, out, f"error: {weights}: ")
    assert fragment in res.stderr
    nothing_left(out)
    assert not out.parent.exists()
    assert not (tmp_path / "unpickled").exists()
