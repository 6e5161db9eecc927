"""The interface every raster time-series source offers, and helpers the layouts share.

Preprocessing and mapping only need a date-sorted stack of co-registered acquisitions that can
be read window by window as reflectance with NaN where unusable. :class:`RasterStack` is that
contract; each on-disk layout (per-date files, band files, STAC, data cube) implements it, so
the rest of the pipeline does not care how a region's rasters are stored.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from cropmeta.errors import InputError
from cropmeta.ingest.prepare import Preparation, mask_invalid

_DATE_TEXT = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


@dataclass(frozen=True)
class RasterStack(ABC):
    """Acquisitions of one grid, sorted by date, read as float32 (band, rows, cols) reflectance.

    Every layout holds ``dates`` (sorted, unique), ``crs`` (kept exactly as stored, custom WKT
    included), ``transform``, ``width``, ``height`` and ``band_names`` (the fields here, before
    its own), and implements :attr:`origin` (the file named in errors about the stack as a
    whole), :attr:`source_files` and :meth:`read`.
    """

    dates: list[date]
    crs: CRS
    transform: Affine
    width: int
    height: int
    band_names: list[str]

    @property
    @abstractmethod
    def origin(self) -> Path:
        """The file (or folder) that error messages about the whole stack name."""

    @property
    @abstractmethod
    def source_files(self) -> list[Path]:
        """The local files reads of this stack depend on, each once, in a fixed order.

        A map signs them (:func:`cropmeta.fileinfo.signature`) so that a run resumes only when
        none changed: whatever decides the values read belongs here (rasters, and metadata
        files that map dates and bands to rasters), while folders are represented by files.
        """

    @abstractmethod
    def read(self, i: int, prep: Preparation, window: Window | None = None) -> np.ndarray:
        """Date ``i`` → reflectance (band, rows, cols) for ``prep.bands``, NaN where unusable."""

    @property
    def doys(self) -> np.ndarray:
        return np.array([d.timetuple().tm_yday for d in self.dates], dtype=np.int32)

    def band_index(self, name: str, path: Path | None = None) -> int:
        """Position of band ``name``: an exact match, else one ignoring case (NDVI = ndvi)."""
        if name in self.band_names:
            return self.band_names.index(name)
        folded = [b.casefold() for b in self.band_names]
        if name.casefold() in folded:
            return folded.index(name.casefold())
        where = path or self.origin
        raise InputError(where, f"band {name!r} missing (bands: {', '.join(self.band_names)})")

    def windows(self, block_rows: int = 512) -> list[Window]:
        """Full-width row blocks: bounded memory whatever the tile height."""
        return [
            Window(0, row, self.width, min(block_rows, self.height - row))
            for row in range(0, self.height, block_rows)
        ]


def parse_date_text(text: str, where: Path | str) -> date:
    """A date written ``YYYY-MM-DD`` or ``YYYYMMDD`` (the whole text), or an :class:`InputError`."""
    match = _DATE_TEXT.fullmatch(text.strip())
    if match:
        try:
            return datetime.strptime("".join(match.groups()), "%Y%m%d").date()
        except ValueError:
            pass
    raise InputError(where, f"cannot read date {text!r} (expected YYYY-MM-DD or YYYYMMDD)")


def select_bands(
    available: Sequence[str], wanted: Sequence[str] | None, quality: str | None, where: Path | str
) -> list[str]:
    """The bands a spec asks for, in its order, plus its quality band; all bands if none asked."""
    if not wanted:
        return list(available)
    chosen = list(dict.fromkeys([*wanted, *([quality] if quality else [])]))
    missing = [b for b in chosen if b not in available]
    if missing:
        raise InputError(
            where, f"band(s) {', '.join(missing)} not found (bands: {', '.join(available)})"
        )
    return chosen


def same_grid(a: tuple[Affine, int, int], b: tuple[Affine, int, int]) -> bool:
    """Same size and transform up to a millionth of a pixel (float noise from other tools)."""
    if a[1:] != b[1:]:
        return False
    tol = 1e-6 * max(abs(a[0].a), abs(a[0].e), 1e-12)
    return all(abs(x - y) <= tol for x, y in zip(a[0][:6], b[0][:6], strict=True))


def nodata_mask(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Where ``values`` equal ``nodata``; NaN-aware (NaN == NaN here), all-False without one."""
    if nodata is None:
        return np.zeros(values.shape, dtype=bool)
    if isinstance(nodata, float) and math.isnan(nodata):
        return np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
    return values == nodata


def outside(values: np.ndarray, valid_range: tuple[float, float] | None) -> np.ndarray:
    """Pixels (rows, cols) where any band of (band, rows, cols) leaves ``valid_range``."""
    if valid_range is None:
        return np.zeros(values.shape[1:], dtype=bool)
    with np.errstate(invalid="ignore"):
        return np.any((values < valid_range[0]) | (values > valid_range[1]), axis=0)


def to_reflectance(
    raw: list[np.ndarray],
    nodata: list[float | None],
    scales: np.ndarray,
    offsets: np.ndarray,
    quality: np.ndarray | None,
    prep: Preparation,
    valid_range: tuple[float, float] | None,
) -> np.ndarray:
    """Stored band values → float32 (band, rows, cols) reflectance, NaN where unusable.

    Per-band nodata is masked here (NaN-aware) before :func:`mask_invalid` scales and applies
    the quality classes and the preparation's valid range; ``valid_range`` is the source's own.
    """
    values = np.empty((len(raw), *raw[0].shape), dtype=np.float32)
    for k, band in enumerate(raw):
        values[k] = band
        values[k][nodata_mask(band, nodata[k])] = np.nan
    out = mask_invalid(
        values,
        scales,
        offsets,
        None,
        quality,
        prep.invalid_classes,
        prep.valid_range,
        prep.invalid_bits,
    )
    out[:, outside(out, valid_range)] = np.nan
    return out
