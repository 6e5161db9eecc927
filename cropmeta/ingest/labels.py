"""Labelled fields: read a vector file, check it, map local names to shared codes."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
from pyogrio.errors import DataSourceError
from rasterio.crs import CRS

from cropmeta.catalog import Taxonomy
from cropmeta.errors import InputError

log = logging.getLogger(__name__)


def read_labels(
    path: str | Path,
    label_column: str,
    taxonomy: Taxonomy,
    crs: CRS,
    id_column: str | None = None,
) -> gpd.GeoDataFrame:
    """Fields with columns ``field_id``, ``label`` (local name), ``code`` (shared), ``geometry``.

    Geometries are reprojected to ``crs`` and invalid ones repaired. Labels the taxonomy does not
    know are dropped with a warning that lists them; a file left with no usable field is an error.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "label file not found")
    try:
        gdf = gpd.read_file(path)
    except (DataSourceError, ValueError) as exc:
        raise InputError(path, f"cannot read label file ({str(exc).splitlines()[0]})") from None
    if len(gdf) == 0:
        raise InputError(path, "label file has no features")
    if label_column not in gdf.columns:
        cols = ", ".join(c for c in gdf.columns if c != "geometry")
        raise InputError(path, f"label column {label_column!r} not found (columns: {cols})")
    if id_column is not None and id_column not in gdf.columns:
        raise InputError(path, f"id column {id_column!r} not found")
    if gdf.crs is None:
        raise InputError(path, "label file has no CRS")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].to_crs(crs)
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        log.warning("%s: repaired %d invalid geometries", path, int(invalid.sum()))
        gdf.loc[invalid, "geometry"] = gdf.geometry[invalid].make_valid()
    ids = gdf[id_column].to_numpy() if id_column else np.arange(1, len(gdf) + 1)
    labels = gdf[label_column].astype(str).to_numpy()
    codes = np.array([(c.code if (c := taxonomy.resolve(x)) else 0) for x in labels], np.int16)
    unknown = sorted(set(labels[codes == 0]))
    if unknown:
        log.warning("%s: labels not in the taxonomy, dropped: %s", path, ", ".join(unknown))
    out = gpd.GeoDataFrame(
        {"field_id": ids, "label": labels, "code": codes}, geometry=gdf.geometry.values, crs=crs
    )
    out = out[out.code > 0].reset_index(drop=True)
    if len(out) == 0:
        raise InputError(path, f"no field has a label the taxonomy knows (column {label_column!r})")
    if out.field_id.duplicated().any():
        raise InputError(path, f"id column {id_column!r} has duplicate values")
    return out
