"""Raster time-series sources: one :class:`RasterStack` whatever the on-disk layout.

``open_source(spec, root)`` reads a catalog's :class:`~cropmeta.catalog.RasterSpec`:

* ``per-date`` — a folder of one multi-band GeoTIFF per date (:mod:`.per_date`);
* ``band-date-pattern`` — a folder of single-band files named by band and date (:mod:`.pattern`);
* ``stac`` — STAC items (a local file or a URL) over local or remote COGs, loaded with
  odc-stac onto one grid (:mod:`.stac`);
* ``datacube`` — a netCDF file or Zarr store (:mod:`.datacube`).

The spec's ``bands`` picks and orders bands (its ``quality_band`` is kept too), ``scale``,
``offset`` and ``nodata`` replace the stored values, and ``valid_range`` masks pixels outside
it on every read, on top of the preparation's own range.
"""

from __future__ import annotations

from pathlib import Path

from rasterio.transform import array_bounds

from cropmeta.catalog import RasterSpec
from cropmeta.ingest.sources.base import RasterStack
from cropmeta.ingest.sources.datacube import CubeStack, open_cube
from cropmeta.ingest.sources.geotiff import BandFileStack
from cropmeta.ingest.sources.pattern import open_band_files
from cropmeta.ingest.sources.per_date import TileStack, open_per_date, open_tiles
from cropmeta.ingest.sources.stac import StacStack, open_stac
from cropmeta.ingest.sources.stac_plan import Extent, is_remote

__all__ = [
    "BandFileStack",
    "Extent",
    "StacStack",
    "CubeStack",
    "RasterStack",
    "is_remote",
    "open_raster",
    "pin_grid",
    "TileStack",
    "open_source",
    "open_tiles",
]

_OPENERS = {
    "per-date": open_per_date,
    "band-date-pattern": open_band_files,
    "datacube": open_cube,
}


def open_source(
    spec: RasterSpec, root: Path | None = None, extent: Extent | None = None
) -> RasterStack:
    """Open the rasters ``spec`` describes; a relative ``spec.path`` is taken from ``root``.

    ``extent`` (e.g. the labels'): the area that matters, where a layout reads a mosaic of
    tiles (``stac``) and the spec gives no ``bounds``; the file layouts read their own grid.
    Every problem with the input raises :class:`~cropmeta.errors.InputError` naming the file.
    """
    if spec.layout == "stac" and is_remote(spec.path):
        return open_stac(spec.path, spec, extent)
    path = Path(spec.path).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    if spec.layout == "stac":
        return open_stac(path, spec, extent)
    return _OPENERS[spec.layout](path, spec)


def open_raster(
    tiles: str | Path | RasterSpec, root: Path | None = None, extent: Extent | None = None
) -> RasterStack:
    """A per-date folder given as a path, or any layout given as a :class:`RasterSpec`."""
    spec = tiles if isinstance(tiles, RasterSpec) else RasterSpec(path=str(tiles))
    return open_source(spec, root, extent)


def pin_grid(spec: RasterSpec, stack: RasterStack) -> RasterSpec:
    """``spec`` with the grid ``stack`` was read on written into it (STAC items: CRS,
    resolution and bounds), so that opening it again, in another process or at map time, reads
    the same pixels; other layouts' grids are their files'."""
    if not isinstance(stack, StacStack):
        return spec
    bounds = array_bounds(stack.height, stack.width, stack.transform)
    return spec.model_copy(
        update=dict(crs=stack.crs.to_string(), resolution=abs(stack.transform.a), bounds=bounds)
    )
