"""The ``band-date-pattern`` layout: a folder of single-band rasters, band and date in the name.

Many archives (the MODIS cubes of ``sits``, per-band Landsat or Sentinel-2 downloads) store one
file per band and date, e.g. ``MODIS_Sinop_NDVI_2013-09-14.tif``. The spec's ``pattern`` is a
regular expression with named groups ``band`` and ``date``, searched in each raster file name
(``.tif``, ``.tiff``, ``.jp2``, ``.vrt``; side-car files such as ``.aux.xml`` are never
candidates, and raster files the pattern does not match are ignored). Band names are the
``band`` group's text exactly as written in the file name (no case folding, so ``B02`` and
``SCL`` stay as Sentinel-2 names them); the date group may be ``YYYY-MM-DD`` or ``YYYYMMDD``.
"""

from __future__ import annotations

import re
from pathlib import Path

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.sources.base import parse_date_text
from cropmeta.ingest.sources.geotiff import BandFileStack, BandRecord, assemble

#: File name endings considered rasters in a band-file folder.
BAND_FILE_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")


def compile_pattern(pattern: str | None, where: Path) -> re.Pattern[str]:
    """The spec's pattern, checked to be a regex with the named groups ``band`` and ``date``."""
    if not pattern:
        raise InputError(where, "layout 'band-date-pattern' needs a 'pattern' (regex)")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InputError(where, f"pattern {pattern!r} is not a valid regex ({exc})") from None
    missing = {"band", "date"} - set(regex.groupindex)
    if missing:
        raise InputError(
            where, f"pattern {pattern!r} lacks the named group(s) {', '.join(sorted(missing))}"
        )
    return regex


def open_band_files(folder: Path, spec: RasterSpec) -> BandFileStack:
    """Group the folder's band files by date into one stack; every date needs every band."""
    regex = compile_pattern(spec.pattern, folder)
    if not folder.is_dir():
        raise InputError(folder, "raster folder not found")
    records = []
    for path in sorted(folder.iterdir()):
        if not path.name.lower().endswith(BAND_FILE_SUFFIXES):
            continue
        match = regex.search(path.name)
        if match is None:
            continue
        day = parse_date_text(match.group("date"), path)
        records.append(BandRecord(day=day, band=match.group("band"), path=path))
    if not records:
        raise InputError(folder, f"no raster file name matches the pattern {spec.pattern!r}")
    return assemble(records, folder, spec, single_band=True)
