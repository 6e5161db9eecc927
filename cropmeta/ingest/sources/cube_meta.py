"""Reading a data cube's structure: dimensions, bands, dates, CRS, transform and encoding.

Conventions understood (CF and what GDAL, rioxarray and odc write): dimensions named
``time``/``t``/``date``, ``y``/``lat``/``latitude``, ``x``/``lon``/``longitude`` and
``band``/``bands``; the CRS as WKT in the ``crs_wkt`` or ``spatial_ref`` attribute of the grid
mapping variable (the data variable's ``grid_mapping``, else a variable ``spatial_ref`` or
``crs``), or a ``crs``/``crs_wkt`` attribute of the dataset or band variable (WKT or an
authority code). The transform comes from a ``GeoTransform`` attribute (GDAL order) of the grid
mapping variable when there is one, otherwise from regularly spaced 1-D x/y pixel-centre
coordinates; y increasing northwards is read flipped so that row 0 is the northern edge.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError

from cropmeta.errors import InputError
from cropmeta.ingest.sources.base import parse_date_text

TIME_DIMS = ("time", "t", "date")
Y_DIMS = ("y", "lat", "latitude")
X_DIMS = ("x", "lon", "longitude")
BAND_DIMS = ("band", "bands")


def cube_dims(ds: xr.Dataset, path: Path) -> tuple[str, str, str, str | None]:
    """Names of the time, y, x and (optional) band dimensions."""
    found = [
        next((d for d in names if d in ds.dims), None) for names in (TIME_DIMS, Y_DIMS, X_DIMS)
    ]
    if None in found:
        dims = ", ".join(map(str, ds.dims)) or "none"
        raise InputError(path, f"needs time, y and x dimensions (has: {dims})")
    band = next((d for d in BAND_DIMS if d in ds.dims), None)
    return found[0], found[1], found[2], band  # type: ignore[return-value]


def band_layers(
    ds: xr.Dataset, dims: tuple[str, str, str, str | None], path: Path
) -> dict[str, tuple[str, int | None]]:
    """Band name → (variable, position along the band dimension, or None for a 3-D variable)."""
    t, y, x, band = dims
    layers: dict[str, tuple[str, int | None]] = {}
    for name, var in ds.data_vars.items():
        if band is not None and set(var.dims) == {t, band, y, x}:
            labels = ds[band].values if band in ds.coords else range(1, ds.sizes[band] + 1)
            named = [
                (_text(v) if band in ds.coords else f"band{v}", j) for j, v in enumerate(labels)
            ]
        elif set(var.dims) == {t, y, x}:
            named = [(str(name), None)]
        else:
            continue
        for label, pos in named:
            if label in layers:
                raise InputError(path, f"band {label!r} appears twice (variable {name!r})")
            layers[label] = (str(name), pos)
    if not layers:
        raise InputError(path, f"no variable over ({t}, {y}, {x}) or ({t}, band, {y}, {x})")
    # stores need not keep the variables' order (Zarr lists them by name): sort the 3-D ones
    along_band = [(k, v) for k, v in layers.items() if v[1] is not None]
    return dict(along_band + sorted((k, v) for k, v in layers.items() if v[1] is None))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_date(value: object, path: Path) -> date:
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise InputError(path, "a time value is missing (NaT)")
        return value.astype("datetime64[D]").astype(object)
    if all(hasattr(value, a) for a in ("year", "month", "day")):  # cftime, datetime
        return date(value.year, value.month, value.day)  # type: ignore[attr-defined]
    if isinstance(value, str | bytes):
        return parse_date_text(_text(value), path)
    raise InputError(path, f"time value {value!r} is not a date (CF 'units' missing?)")


def cube_dates(ds: xr.Dataset, t_dim: str, path: Path) -> tuple[list[date], list[int]]:
    """The sorted dates and, for each, its position along the time dimension."""
    if t_dim not in ds.variables:
        raise InputError(path, f"dimension {t_dim!r} has no coordinate giving the dates")
    days = [_as_date(v, path) for v in ds[t_dim].values]
    order = sorted(range(len(days)), key=days.__getitem__)
    for a, b in zip(order, order[1:], strict=False):
        if days[a] == days[b]:
            raise InputError(path, f"duplicate time step {days[b]} (positions {a} and {b})")
    return [days[j] for j in order], order


def _grid_mapping(ds: xr.Dataset, variables: list[str]) -> xr.DataArray | None:
    for v in variables:
        gm = ds[v].attrs.get("grid_mapping")
        if isinstance(gm, str) and gm in ds.variables:
            return ds[gm]
    return next((ds[n] for n in ("spatial_ref", "crs") if n in ds.variables), None)


def cube_crs(ds: xr.Dataset, variables: list[str], path: Path) -> CRS:
    """The CRS, parsed from WKT (kept as written, custom projections included) or a code."""
    gm = _grid_mapping(ds, variables)
    sources = [gm.attrs if gm is not None else {}, ds.attrs, ds[variables[0]].attrs]
    keys = ("crs_wkt", "spatial_ref", "crs")
    text = next((s[k] for s in sources for k in keys if isinstance(s.get(k), str) and s[k]), None)
    if text is None:
        raise InputError(path, "no CRS (crs_wkt/spatial_ref of a grid mapping, or a crs attribute)")
    try:
        return CRS.from_wkt(text)
    except CRSError:
        try:
            return CRS.from_user_input(text)
        except CRSError as exc:
            raise InputError(path, f"cannot parse the CRS ({exc})") from None


def cube_transform(
    ds: xr.Dataset, dims: tuple[str, str, str, str | None], variables: list[str], path: Path
) -> tuple[Affine, bool]:
    """The north-up transform and whether stored rows run south to north (and need flipping)."""
    gm = _grid_mapping(ds, variables)
    gt = gm.attrs.get("GeoTransform") if gm is not None else None
    if gt is not None:
        try:
            return Affine.from_gdal(*(float(v) for v in str(gt).split())), False
        except (TypeError, ValueError):
            raise InputError(path, f"GeoTransform {gt!r} is not six numbers") from None
    _, y_dim, x_dim, _ = dims
    x0, dx = _spacing(ds, x_dim, path)
    y0, dy = _spacing(ds, y_dim, path)
    if dx < 0:
        raise InputError(path, f"{x_dim} coordinates decrease; expected west to east")
    if dy < 0:
        return Affine(dx, 0.0, x0 - dx / 2, 0.0, dy, y0 - dy / 2), False
    top = y0 + dy * (ds.sizes[y_dim] - 1)
    return Affine(dx, 0.0, x0 - dx / 2, 0.0, -dy, top + dy / 2), True


def _spacing(ds: xr.Dataset, dim: str, path: Path) -> tuple[float, float]:
    """First pixel centre and spacing of a regular 1-D coordinate."""
    if dim not in ds.variables or ds[dim].ndim != 1 or ds.sizes[dim] < 2:
        raise InputError(path, f"no GeoTransform and no 1-D {dim} coordinate of 2+ pixel centres")
    c = ds[dim].values.astype(np.float64)
    step = (c[-1] - c[0]) / (len(c) - 1)
    if step == 0 or not np.allclose(np.diff(c), step, rtol=1e-6, atol=0):
        raise InputError(path, f"{dim} coordinates are not regularly spaced")
    return float(c[0]), float(step)


def encoding(var: xr.DataArray) -> tuple[float, float, float | None]:
    """Scale, offset and nodata of a variable as stored (CF attributes or encoding)."""
    meta = {**var.encoding, **var.attrs}
    nodata = next((meta[k] for k in ("_FillValue", "missing_value", "nodata") if k in meta), None)
    return (
        float(meta.get("scale_factor", 1.0)),
        float(meta.get("add_offset", 0.0)),
        None if nodata is None else float(np.asarray(nodata).ravel()[0]),
    )
