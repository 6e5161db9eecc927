"""The ``datacube`` layout: a netCDF file or Zarr store opened lazily with xarray.

Bands are either a variable over (time, band, y, x) whose ``band`` coordinate names them, or
one variable per band over (time, y, x) named after the band; both may appear together (the
band dimension's bands first, in its order, then the 3-D variables sorted by name). Values
are read as stored (``mask_and_scale=False``) so that ``scale_factor``/``add_offset``/
``_FillValue`` behave exactly like a GeoTIFF's scale, offset and nodata, and a spec's overrides
replace rather than compound them. Only the window asked for is read from disk.

Georeferencing: see :mod:`cropmeta.ingest.sources.cube_meta`.

:attr:`CubeStack.source_files` (what a map's resume check signs): a netCDF file (or any cube
stored as one file) is itself; a Zarr store is a folder of files, of which it lists every
metadata file (``zarr.json``, ``.zarray``, ``.zattrs``, ``.zgroup``, ``.zmetadata``) and the
chunk files, all of them up to :data:`MAX_CHUNK_FILES`, else that many spread evenly over the
sorted list (a large store rewritten as a whole is seen; one chunk rewritten in place among
millions may not be, at that size signing every chunk would cost a read of the store).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from rasterio.windows import Window

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.prepare import Preparation
from cropmeta.ingest.sources.base import RasterStack, select_bands, to_reflectance
from cropmeta.ingest.sources.cube_meta import (
    band_layers,
    cube_crs,
    cube_dates,
    cube_dims,
    cube_transform,
    encoding,
)

#: Zarr (v2 and v3) metadata files: always signed.
ZARR_METADATA = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})
#: At most this many of a Zarr store's chunk files are signed.
MAX_CHUNK_FILES = 4096


def store_files(root: Path) -> list[Path]:
    """A Zarr folder's metadata files, then its chunk files (at most :data:`MAX_CHUNK_FILES`,
    evenly spread over all of them), each list in walk order (names and folders sorted)."""
    metadata: list[Path] = []
    chunks: list[Path] = []
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        for name in sorted(names):
            (metadata if name in ZARR_METADATA else chunks).append(Path(folder) / name)
    if len(chunks) > MAX_CHUNK_FILES:
        chunks = [chunks[k * len(chunks) // MAX_CHUNK_FILES] for k in range(MAX_CHUNK_FILES)]
    return metadata + chunks


@dataclass(frozen=True)
class CubeStack(RasterStack):
    """A lazily opened cube; ``layers[b]`` is (variable, band position or None) of band ``b``."""

    source: Path
    dataset: xr.Dataset
    dims: tuple[str, str, str, str | None]  # time, y, x, band
    time_index: list[int]  # position along the time dimension of each (sorted) date
    flip_y: bool  # rows stored south to north: reverse them so that row 0 is the north
    layers: list[tuple[str, int | None]]
    scales: np.ndarray
    offsets: np.ndarray
    nodata: list[float | None]
    valid_range: tuple[float, float] | None = None

    @property
    def origin(self) -> Path:
        return self.source

    @property
    def source_files(self) -> list[Path]:
        """The cube file, or a Zarr folder's files (see the module docstring)."""
        return store_files(self.source) if self.source.is_dir() else [self.source]

    def _band(self, i: int, b: int, window: Window | None) -> np.ndarray:
        t_dim, y_dim, x_dim, band_dim = self.dims
        r0, c0 = (0, 0) if window is None else (int(window.row_off), int(window.col_off))
        rows = self.height if window is None else int(window.height)
        cols = self.width if window is None else int(window.width)
        y = (
            slice(self.height - r0 - rows, self.height - r0)
            if self.flip_y
            else slice(r0, r0 + rows)
        )
        name, pos = self.layers[b]
        sel: dict[str, int | slice] = {
            t_dim: self.time_index[i],
            y_dim: y,
            x_dim: slice(c0, c0 + cols),
        }
        if pos is not None and band_dim is not None:
            sel[band_dim] = pos
        try:
            block = self.dataset[name].isel(sel).transpose(y_dim, x_dim).values
        except (OSError, RuntimeError, ValueError) as exc:
            raise InputError(
                self.source, f"cannot read {name!r} at {self.dates[i]} ({exc})"
            ) from None
        return block[::-1] if self.flip_y else block

    def read(self, i: int, prep: Preparation, window: Window | None = None) -> np.ndarray:
        idx = [self.band_index(b) for b in prep.bands]
        q = self.band_index(prep.quality_band) if prep.quality_band else None
        raw = [self._band(i, b, window) for b in idx]
        quality = self._band(i, q, window) if q is not None else None
        nodata = [self.nodata[b] for b in idx]
        return to_reflectance(
            raw, nodata, self.scales[idx], self.offsets[idx], quality, prep, self.valid_range
        )


def _open(path: Path) -> xr.Dataset:
    if not path.exists():
        raise InputError(path, "data cube not found")
    zarr = path.is_dir() or path.suffix.lower() == ".zarr"
    try:
        with warnings.catch_warnings():  # unconsolidated Zarr metadata is fine for small cubes
            warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated")
            return xr.open_dataset(
                path, engine="zarr" if zarr else "netcdf4", mask_and_scale=False, cache=False
            )
    except Exception as exc:  # the backends raise many types for a damaged store
        problem = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(path, f"cannot open data cube ({problem[:200]})") from None


def open_cube(path: Path, spec: RasterSpec) -> CubeStack:
    """Open a netCDF/Zarr cube lazily and check that it describes one georeferenced stack."""
    ds = _open(path)
    dims = cube_dims(ds, path)
    available = band_layers(ds, dims, path)
    bands = select_bands(list(available), spec.bands, spec.quality_band, path)
    layers = [available[b] for b in bands]
    days, order = cube_dates(ds, dims[0], path)
    transform, flip_y = cube_transform(ds, dims, [v for v, _ in layers], path)
    scales, offsets, nodata = zip(*(encoding(ds[v]) for v, _ in layers), strict=True)
    return CubeStack(
        source=path,
        dataset=ds,
        dims=dims,
        time_index=order,
        flip_y=flip_y,
        dates=days,
        crs=cube_crs(ds, [v for v, _ in layers], path),
        transform=transform,
        width=ds.sizes[dims[2]],
        height=ds.sizes[dims[1]],
        band_names=bands,
        layers=layers,
        scales=np.array(scales if spec.scale is None else [spec.scale] * len(bands), np.float64),
        offsets=np.array(
            offsets if spec.offset is None else [spec.offset] * len(bands), np.float64
        ),
        nodata=list(nodata) if spec.nodata is None else [spec.nodata] * len(bands),
        valid_range=spec.valid_range,
    )
