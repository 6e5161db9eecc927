"""A folder of one multi-band raster per acquisition date, read as one time-resolved stack.

The reader now lives in :mod:`cropmeta.ingest.sources.per_date`, next to the other raster
layouts (:func:`cropmeta.ingest.sources.open_source`); this module keeps the old import path.
"""

from __future__ import annotations

from cropmeta.ingest.sources.per_date import RASTER_SUFFIXES, TileStack, open_tiles, parse_date

__all__ = ["RASTER_SUFFIXES", "TileStack", "open_tiles", "parse_date"]
