"""Classify every pixel of a tile stack with an adapted model and write a GeoTIFF crop map.

Each block of pixels is read from every date, masked, regularised and standardised by the
same functions and recorded parameters that prepared the training data
(:mod:`cropmeta.ingest.prepare`), then classified. Pixels without enough valid observations get
nodata (0). Pixel values are the taxonomy's shared class codes, named in the file's metadata and
coloured by its colour table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError, atomic_output
from cropmeta.ingest.prepare import regularise
from cropmeta.ingest.sources import open_raster
from cropmeta.models.bundle import load_bundle

NODATA = 0


def _hex_to_rgba(colour: str) -> tuple[int, int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def map_region(
    model_dir: str | Path,
    tiles: str | Path | RasterSpec,
    out: str | Path,
    *,
    block: int = 256,
    batch: int = 16384,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a single-band uint8 crop map of ``tiles`` to ``out`` (GeoTIFF, CRS of the tiles).

    ``tiles`` is a per-date folder or a :class:`RasterSpec` of any layout preprocess reads.
    """
    model, cfg = load_bundle(model_dir)
    if cfg.kind != "adapted":
        raise InputError(model_dir, "model is not adapted to a region; run `cropmeta adapt` first")
    prep = cfg.preparation
    stack = open_raster(tiles)
    tiles = tiles.path if isinstance(tiles, RasterSpec) else tiles
    for band in prep.bands + ([prep.quality_band] if prep.quality_band else []):
        stack.band_index(band)
    g = prep.grid
    doys = stack.doys
    if not g.in_season(doys).any():
        raise InputError(
            tiles, f"no acquisition inside the model's season (DOY {g.start_doy}–{g.end_doy})"
        )
    codes = np.array([c.code for c in cfg.classes], dtype=np.uint8)
    doy = torch.from_numpy(g.doys()).long()
    windows = [
        Window(col, row, min(block, stack.width - col), min(block, stack.height - row))
        for row in range(0, stack.height, block)
        for col in range(0, stack.width, block)
    ]
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 1,
        "width": stack.width,
        "height": stack.height,
        "crs": stack.crs,
        "transform": stack.transform,
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with atomic_output(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for done, win in enumerate(windows, start=1):
            obs = np.stack([stack.read(t, prep, win) for t in range(len(stack.dates))])
            series, _ = regularise(obs.reshape(obs.shape[0], obs.shape[1], -1), doys, prep)
            ok = ~np.isnan(series).any(axis=(0, 1))
            x = torch.from_numpy(cfg.normaliser(np.transpose(series[:, :, ok], (2, 0, 1))))
            labels = np.zeros(ok.shape, dtype=np.uint8)
            with torch.no_grad():
                pred = (
                    torch.cat(
                        [model(x[i : i + batch], doy).argmax(-1) for i in range(0, len(x), batch)]
                    )
                    if len(x)
                    else torch.empty(0)
                )
            labels[ok] = codes[pred.numpy().astype(int)]
            dst.write(labels.reshape(int(win.height), int(win.width)), 1, window=win)
            if progress:
                progress(done, len(windows))
        dst.write_colormap(1, {c.code: _hex_to_rgba(c.colour) for c in cfg.classes})
        dst.set_band_description(1, "crop_class")
        dst.update_tags(
            CROPMETA_CLASSES=";".join(f"{c.code}={c.name}" for c in cfg.classes),
            CROPMETA_NODATA=f"{NODATA}=not classified (masked or too few valid observations)",
            **{f"CLASS_{c.code}": c.name for c in cfg.classes},
        )
    return Path(out)
