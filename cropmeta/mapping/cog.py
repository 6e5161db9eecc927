"""Cloud-Optimized GeoTIFFs from finished blocks, with bounded memory.

The blocks are copied tile by tile into a plain tiled GeoTIFF in the work folder, which GDAL's
COG driver turns into the final file (internal overviews, compressed tiles, header first).
GDAL's block cache is capped while it does so, so memory does not grow with the raster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.windows import Window

from cropmeta.errors import atomic_output

TILE = 256
CACHE_MB = 64


@dataclass
class Layer:
    """One output raster: its bands and how GDAL/QGIS should show them."""

    count: int
    nodata: int
    resampling: str  # overview resampling: MODE for classes, AVERAGE for scaled values
    descriptions: list[str]
    scale: float = 1.0
    colormap: dict[int, tuple[int, int, int, int]] | None = None
    tags: dict[str, str] = field(default_factory=dict)


def write_cog(
    out: Path,
    layer: Layer,
    read: Callable[[Window], object],
    *,
    width: int,
    height: int,
    crs,
    transform,
    scratch: Path,
) -> Path:
    """Write ``layer`` to ``out`` (atomically) from ``read(window)`` → (band, rows, cols)."""
    staging = scratch / f"{out.name}.staging.tif"
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": layer.count,
        "width": width,
        "height": height,
        "crs": crs,
        "transform": transform,
        "nodata": layer.nodata,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "interleave": "band",
    }
    with rasterio.Env(GDAL_CACHEMAX=CACHE_MB):
        with rasterio.open(staging, "w", **profile) as dst:
            for row in range(0, height, TILE):
                for col in range(0, width, TILE):
                    win = Window(col, row, min(TILE, width - col), min(TILE, height - row))
                    data = read(win)
                    dst.write(data if data.ndim == 3 else data[None], window=win)
            dst.descriptions = tuple(layer.descriptions)
            if layer.scale != 1.0:
                dst.scales = (layer.scale,) * layer.count
            if layer.colormap:
                dst.write_colormap(1, layer.colormap)
            dst.update_tags(**layer.tags)
        with atomic_output(out) as tmp:
            rasterio.shutil.copy(
                staging,
                tmp,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR="NO",
                BLOCKSIZE=TILE,
                OVERVIEWS="AUTO",
                OVERVIEW_RESAMPLING=layer.resampling,
                NUM_THREADS="ALL_CPUS",
            )
    staging.unlink()
    return out
