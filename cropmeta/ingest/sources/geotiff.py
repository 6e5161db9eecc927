"""A stack whose every (date, band) is one band of some GeoTIFF (or other GDAL raster).

The per-date, band-file and STAC layouts differ only in how they find the files; once each
(date, band) is pinned to a file and band number, :func:`assemble` checks the set once (no
duplicates or gaps, one CRS and grid, readable headers) and :class:`BandFileStack` reads it
window by window with rasterio, opening each file only for the bands a read needs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.prepare import Preparation
from cropmeta.ingest.sources.base import RasterStack, same_grid, select_bands, to_reflectance


@dataclass(frozen=True)
class BandRecord:
    """One band of one date: which file holds it, and which (1-based) band of that file."""

    day: date
    band: str
    path: Path
    band_no: int = 1


@dataclass(frozen=True)
class BandFileStack(RasterStack):
    """Dates × bands, each held in a raster file band, with per-(date, band) scale and nodata."""

    source: Path
    files: list[list[tuple[Path, int]]]  # [date][band] → (file, 1-based band number)
    scales: np.ndarray  # (date, band)
    offsets: np.ndarray  # (date, band)
    nodata: list[list[float | None]]  # [date][band]
    valid_range: tuple[float, float] | None = None
    metadata: tuple[Path, ...] = ()  # files that pinned (date, band) to files (STAC JSON)

    @property
    def origin(self) -> Path:
        return self.source

    @property
    def source_files(self) -> list[Path]:
        """The metadata files, then every raster in date and band order, each once."""
        rasters = (path for row in self.files for path, _ in row)
        return list(dict.fromkeys([*self.metadata, *rasters]))

    def _raw(self, i: int, bands: list[int], window: Window | None) -> list[np.ndarray]:
        """The stored values of ``bands`` on date ``i``; each file is opened once."""
        by_file: dict[Path, list[int]] = defaultdict(list)
        for b in bands:
            by_file[self.files[i][b][0]].append(b)
        out: dict[int, np.ndarray] = {}
        for path, members in by_file.items():
            try:
                with rasterio.open(path) as src:
                    block = src.read([self.files[i][b][1] for b in members], window=window)
            except RasterioError as exc:
                raise InputError(path, f"cannot read raster ({read_problem(exc)})") from None
            out.update(zip(members, block, strict=True))
        return [out[b] for b in bands]

    def read(self, i: int, prep: Preparation, window: Window | None = None) -> np.ndarray:
        idx = [self.band_index(b) for b in prep.bands]
        q = self.band_index(prep.quality_band) if prep.quality_band else None
        raw = self._raw(i, idx + ([q] if q is not None else []), window)
        quality = raw.pop() if q is not None else None
        nodata = [self.nodata[i][b] for b in idx]
        scales, offsets = self.scales[i, idx], self.offsets[i, idx]
        return to_reflectance(raw, nodata, scales, offsets, quality, prep, self.valid_range)


def read_problem(exc: BaseException) -> str:
    """What went wrong in a failed read, in one line: GDAL's own first complaint.

    rasterio raises "Read failed. See previous exception for details." and chains GDAL's
    errors as causes; the innermost one says what is wrong with the file (a block beyond the
    end of a truncated file, a block that does not decompress).
    """
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    text = (str(inner) or str(exc) or exc.__class__.__name__).splitlines()[0]
    if inner is not exc:
        text = f"damaged or truncated file: {text}"
    return text[:200]


class Header(NamedTuple):
    """What :func:`assemble` needs from a raster's header."""

    crs: CRS
    grid: tuple[Affine, int, int]  # transform, width, height
    count: int
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    nodata: float | None


def _header(path: Path) -> Header:
    try:
        with rasterio.open(path) as src:
            grid = (src.transform, src.width, src.height)
            return Header(src.crs, grid, src.count, src.scales, src.offsets, src.nodata)
    except RasterioError as exc:
        raise InputError(path, f"cannot open raster ({str(exc).splitlines()[0]})") from None


def assemble(
    records: list[BandRecord], where: Path, spec: RasterSpec, single_band: bool = False
) -> BandFileStack:
    """Check that ``records`` form one consistent stack and return it (sorted by date).

    Bands are the spec's (plus its quality band) or, by default, every band seen, sorted by
    name. Every date needs every band; all files share the first file's CRS and grid.
    """
    if not records:
        raise InputError(where, "no raster files found")
    seen: dict[tuple[date, str], Path] = {}
    for r in sorted(records, key=lambda r: (r.day, r.band, r.path.name)):
        other = seen.setdefault((r.day, r.band), r.path)
        if other != r.path:
            raise InputError(r.path, f"duplicate band {r.band!r} for {r.day} (also {other.name})")
    bands = select_bands(sorted({r.band for r in records}), spec.bands, spec.quality_band, where)
    dates = sorted({r.day for r in records})
    by_key = {(r.day, r.band): r for r in records}
    for d in dates:
        lacking = [b for b in bands if (d, b) not in by_key]
        if lacking:
            present = sorted((r.path for r in records if r.day == d), key=lambda p: p.name)
            raise InputError(
                present[0],
                f"date {d} lacks band(s) {', '.join(lacking)} "
                f"(its files: {', '.join(p.name for p in present)})",
            )
    headers: dict[Path, Header] = {}
    ref: Header | None = None
    for d in dates:
        for b in bands:
            rec = by_key[(d, b)]
            if rec.path in headers:
                continue
            head = headers[rec.path] = _header(rec.path)
            if single_band and head.count != 1:
                raise InputError(rec.path, f"expected a single-band raster, not {head.count} bands")
            if rec.band_no > head.count:
                raise InputError(rec.path, f"has {head.count} band(s), band {rec.band_no} wanted")
            if ref is None:
                ref = head
            elif head.crs != ref.crs:
                raise InputError(
                    rec.path, f"CRS differs from the first file ({head.crs} vs {ref.crs})"
                )
            elif not same_grid(head.grid, ref.grid):
                raise InputError(rec.path, "grid (transform or size) differs from the first file")
    assert ref is not None
    rows = [[by_key[(d, b)] for b in bands] for d in dates]
    scales = np.array([[headers[r.path].scales[r.band_no - 1] for r in row] for row in rows])
    offsets = np.array([[headers[r.path].offsets[r.band_no - 1] for r in row] for row in rows])
    nodata = [[headers[r.path].nodata for r in row] for row in rows]
    if spec.scale is not None:
        scales[:] = spec.scale
    if spec.offset is not None:
        offsets[:] = spec.offset
    if spec.nodata is not None:
        nodata = [[spec.nodata] * len(bands) for _ in dates]
    return BandFileStack(
        source=where,
        dates=dates,
        crs=ref.crs,
        transform=ref.grid[0],
        width=ref.grid[1],
        height=ref.grid[2],
        band_names=bands,
        files=[[(r.path, r.band_no) for r in row] for row in rows],
        scales=scales.astype(np.float64),
        offsets=offsets.astype(np.float64),
        nodata=nodata,
        valid_range=spec.valid_range,
    )
