"""Polygons at map time: an AOI that restricts the map, and fields that get one answer each.

A field's class is the most probable class of its mean pixel probability (soft voting over the
pixels whose centres fall inside it, the usual object-based reading of a pixel map); its
probability is that mean probability, its uncertainty is computed from the mean probabilities
as for pixels.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyogrio.errors import DataSourceError
from rasterio.crs import CRS

from cropmeta.errors import InputError, atomic_output
from cropmeta.mapping.blocks import uncertainty_of
from cropmeta.models.bundle import ClassInfo
from cropmeta.ownership import TAG


def read_polygons(path: Path, crs: CRS, what: str) -> gpd.GeoDataFrame:
    """Polygons of a vector file, reprojected to the raster's CRS (exactly, custom WKT too)."""
    if not Path(path).exists():
        raise InputError(path, f"{what} file not found")
    try:
        gdf = gpd.read_file(path)
    except (DataSourceError, ValueError) as exc:
        raise InputError(path, f"cannot read {what} ({str(exc).splitlines()[0]})") from None
    if gdf.empty:
        raise InputError(path, f"{what} file holds no features")
    if gdf.crs is None:
        raise InputError(path, f"{what} file has no CRS")
    kinds = set(gdf.geometry.geom_type.dropna())
    if not kinds or not kinds <= {"Polygon", "MultiPolygon"}:
        raise InputError(
            path, f"{what} must be polygons (found {', '.join(sorted(kinds)) or 'none'})"
        )
    gdf = gdf.to_crs(crs.to_wkt())
    gdf["geometry"] = shapely.make_valid(gdf.geometry.values)
    return gdf.reset_index(drop=True)


def check_overlap(gdf: gpd.GeoDataFrame, bounds: tuple[float, ...], path: Path, what: str) -> None:
    if not gdf.geometry.intersects(shapely.box(*bounds)).any():
        raise InputError(path, f"no {what} polygon overlaps the raster")


def as_wkb(gdf: gpd.GeoDataFrame) -> tuple[bytes, ...]:
    return tuple(shapely.to_wkb(gdf.geometry.values))


def field_predictions(
    fields: gpd.GeoDataFrame,
    sums: np.ndarray,
    counts: np.ndarray,
    classes: list[ClassInfo],
    uncertainty: str,
) -> gpd.GeoDataFrame:
    """The fields with their predicted class, mean probability, uncertainty and pixel count."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts[:, None]
    seen = counts > 0
    mean = np.nan_to_num(mean)  # fields without a classified pixel: zeros, masked below
    best = np.where(seen, mean.argmax(axis=1), 0)
    codes = np.array([c.code for c in classes])
    names = np.array([c.name for c in classes], dtype=object)
    out = fields.copy()
    out["class_code"] = np.where(seen, codes[best], 0).astype(np.int32)
    out["class_name"] = np.where(seen, names[best], None)
    out["probability"] = np.where(seen, mean.max(axis=1), np.nan)
    kind = "entropy" if uncertainty == "none" else uncertainty
    unc = uncertainty_of(mean, kind)
    out[f"uncertainty_{kind}"] = np.where(seen, unc, np.nan)
    out["pixels"] = counts
    return out


def write_fields(gdf: gpd.GeoDataFrame, path: Path) -> None:
    with atomic_output(path) as tmp:
        gdf.to_file(tmp, driver="GPKG", layer="fields", metadata={TAG: "crop-map-fields"})
