"""The ``per-date`` layout: a folder of one multi-band raster per acquisition date.

The date comes from the file name (``YYYYMMDD`` or ``YYYY-MM-DD``); band names from the band
descriptions; scale, offset and nodata from the file's metadata. All dates must share CRS, grid
and bands, otherwise the stack is rejected with a one-line error naming the offending file.

:func:`open_tiles` reads such a folder into a :class:`TileStack`; :func:`open_per_date` adds a
spec's overrides and band subset on top.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.prepare import Preparation, mask_invalid
from cropmeta.ingest.sources.base import RasterStack, select_bands
from cropmeta.ingest.sources.geotiff import BandFileStack, read_problem

_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
RASTER_SUFFIXES = (".tif", ".tiff")


def parse_date(path: Path) -> date:
    """The acquisition date in a file name, or an :class:`InputError`."""
    for match in _DATE.finditer(path.stem):
        try:
            return datetime.strptime("".join(match.groups()), "%Y%m%d").date()
        except ValueError:
            continue
    raise InputError(path, "no acquisition date (YYYYMMDD or YYYY-MM-DD) in the file name")


@dataclass(frozen=True)
class TileStack(RasterStack):
    """Acquisitions of one tile, sorted by date, with the metadata every date shares."""

    paths: list[Path]
    scales: np.ndarray
    offsets: np.ndarray
    nodata: float | None

    @property
    def origin(self) -> Path:
        return self.paths[0]

    @property
    def source_files(self) -> list[Path]:
        """One raster per date, in date order."""
        return list(self.paths)

    def read(self, i: int, prep: Preparation, window: Window | None = None) -> np.ndarray:
        """Date ``i`` → reflectance (band, rows, cols) for ``prep.bands``, NaN where unusable."""
        idx = [self.band_index(b) for b in prep.bands]
        q = self.band_index(prep.quality_band) if prep.quality_band else None
        wanted = idx + ([q] if q is not None else [])
        try:
            with rasterio.open(self.paths[i]) as src:
                raw = src.read([j + 1 for j in wanted], window=window)
        except RasterioError as exc:
            raise InputError(self.paths[i], f"cannot read raster ({read_problem(exc)})") from None
        quality = raw[-1] if q is not None else None
        dn = raw[: len(idx)]
        return mask_invalid(
            dn,
            self.scales[idx],
            self.offsets[idx],
            self.nodata,
            quality,
            prep.invalid_classes,
            prep.valid_range,
            prep.invalid_bits,
        )


def open_tiles(folder: str | Path) -> TileStack:
    """Open a folder of per-date rasters; validate that the dates form one consistent stack."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "tile folder not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
    if not paths:
        raise InputError(folder, "no GeoTIFF (.tif) files in the tile folder")
    dated = sorted(((parse_date(p), p) for p in paths), key=lambda t: t[0])
    for (d0, p0), (d1, p1) in zip(dated, dated[1:], strict=False):
        if d0 == d1:
            raise InputError(p1, f"duplicate acquisition date {d1} (also in {p0.name})")
    ref = None
    for _, path in dated:
        try:
            with rasterio.open(path) as src:
                meta = (src.crs, src.transform, src.width, src.height, src.count)
                if ref is None:
                    ref = meta
                    names = [d or f"band{j + 1}" for j, d in enumerate(src.descriptions)]
                    scales, offsets = np.array(src.scales), np.array(src.offsets)
                    nodata = src.nodata
                elif meta[0] != ref[0]:
                    raise InputError(
                        path, f"CRS differs from the first date ({meta[0]} vs {ref[0]})"
                    )
                elif meta[1:] != ref[1:]:
                    raise InputError(path, "grid or band count differs from the first date")
        except RasterioIOError as exc:
            raise InputError(path, f"cannot open raster ({str(exc).splitlines()[0]})") from None
    assert ref is not None
    return TileStack(
        paths=[p for _, p in dated],
        dates=[d for d, _ in dated],
        crs=ref[0],
        transform=ref[1],
        width=ref[2],
        height=ref[3],
        band_names=names,
        scales=scales,
        offsets=offsets,
        nodata=nodata,
    )


def open_per_date(folder: Path, spec: RasterSpec) -> BandFileStack:
    """:func:`open_tiles` with the spec's band subset and scale/offset/nodata overrides.

    Like :func:`open_tiles`, the first date's scale, offset and nodata apply to every date.
    """
    tiles = open_tiles(folder)
    bands = select_bands(tiles.band_names, spec.bands, spec.quality_band, tiles.origin)
    cols = [tiles.band_names.index(b) for b in bands]
    shape = (len(tiles.dates), len(cols))
    scales = np.broadcast_to(tiles.scales[cols] if spec.scale is None else spec.scale, shape)
    offsets = np.broadcast_to(tiles.offsets[cols] if spec.offset is None else spec.offset, shape)
    nodata = tiles.nodata if spec.nodata is None else spec.nodata
    return BandFileStack(
        source=folder,
        dates=tiles.dates,
        crs=tiles.crs,
        transform=tiles.transform,
        width=tiles.width,
        height=tiles.height,
        band_names=bands,
        files=[[(p, c + 1) for c in cols] for p in tiles.paths],
        scales=np.array(scales, dtype=np.float64),
        offsets=np.array(offsets, dtype=np.float64),
        nodata=[[nodata] * len(cols) for _ in tiles.dates],
        valid_range=spec.valid_range,
    )
