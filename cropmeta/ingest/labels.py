"""Labelled fields: read a label file, check it, map local names to shared codes.

Labels come from many tools, so this reads what they write — GeoPackage, GeoJSON, Shapefile,
GeoParquet, or a CSV/Parquet table of point coordinates — reprojects them to the raster's CRS
and turns every problem a user can fix into an :class:`InputError` naming the file. What was
repaired or dropped on the way is kept in ``gdf.attrs["label_report"]`` so that preprocessing
can put it into its summary instead of it being lost in a log. Fields without labels (the
target region's parcels, for transductive adaptation) go through the same reading and checks
(:func:`read_fields`), so an unlabelled dataset is built from exactly the geometries a
labelled one would be.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS as ProjCRS
from pyproj.exceptions import CRSError
from rasterio.crs import CRS as RioCRS

from cropmeta.errors import InputError
from cropmeta.ingest.dataset import UNLABELLED_CODE
from cropmeta.ingest.sources.stac_plan import Extent
from cropmeta.ingest.table_readers import data_row
from cropmeta.taxonomy import Taxonomy

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
#: Coordinate column pairs tried, case-insensitively and in order, when a table names none.
COORD_PAIRS = (
    ("longitude", "latitude"),
    ("lon", "lat"),
    ("lng", "lat"),
    ("long", "lat"),
    ("x", "y"),
)
#: Sample id columns tried when a table names none (long tables repeat the id on every date).
ID_NAMES = ("sample_id", "field_id", "id")
#: The largest share of a table's points whose coordinates may be missing or not numbers: they
#: are dropped with a warning; above it the file is refused, since a wrong column, decimal comma
#: or broken export is likelier than a few unplaced samples.
MAX_BAD_COORDINATES = 0.10
#: How an empty (missing, NaN or blank) label is named in reports and messages.
EMPTY_LABEL = "(empty)"


def read_labels(
    path: str | Path,
    label_column: str,
    taxonomy: Taxonomy,
    crs: Any,
    id_column: str | None = None,
    *,
    layer: str | None = None,
    x_column: str | None = None,
    y_column: str | None = None,
    labels_crs: Any = "EPSG:4326",
    drop_unknown: bool = False,
) -> gpd.GeoDataFrame:
    """Fields with columns ``field_id``, ``label`` (local name), ``code`` (shared), ``geometry``.

    ``crs`` is the raster's (anything pyproj reads: a rasterio CRS, EPSG code or custom WKT).
    ``layer`` picks a layer of a multi-layer file. Tables (CSV, or Parquet without geometry)
    give points from ``x_column``/``y_column`` (found by name when not given) in ``labels_crs``;
    a long table with several rows per id gives one point per id; points whose coordinates are
    missing or not numbers are dropped, unless they are more than :data:`MAX_BAD_COORDINATES`
    of them (then the file is refused). Invalid geometries are repaired (polygons stay
    polygons), empty ones are dropped. Labels the taxonomy does not know (empty ones included,
    named :data:`EMPTY_LABEL`) refuse the file, so that classes are never lost unnoticed, unless
    ``drop_unknown``: then they are dropped. ``attrs["label_report"]`` counts it all: ``rows``
    read, ``duplicate_ids`` (ids of a long table folded to one row), ``bad_coordinates`` (tables;
    among ``empty_dropped``), ``features`` after that, ``empty_dropped``, ``repaired``,
    ``collapsed_dropped`` (nothing left after repair), ``unknown_labels`` ({name: count}, most
    frequent first), ``kept``, ``points`` (of the kept), and the ``id_column`` used. Warnings
    are logged only once the file is accepted, so an error is never preceded by one.
    """
    path = Path(path)
    frame, ids, report, notes, id_column = _features(
        path, label_column, id_column, layer, x_column, y_column, labels_crs, "label file"
    )
    labels = frame[label_column].fillna("").astype(str).str.strip().to_numpy()
    lookup = {n: (c.code if (c := taxonomy.resolve(n)) else 0) for n in set(labels)}
    codes = np.array([lookup[n] for n in labels], np.int16)
    out = gpd.GeoDataFrame(
        {"field_id": ids, "label": labels, "code": codes}, geometry=frame.geometry.values
    ).set_crs(frame.crs)
    out = _clean_geometries(path, out, report, notes, "label file")
    unknown = out.label[out.code == 0].replace("", EMPTY_LABEL)
    report["unknown_labels"] = dict(Counter(unknown).most_common())
    out = out[out.code > 0].reset_index(drop=True)
    if len(out) == 0:
        problem = f"no label in column {label_column!r} is known to the taxonomy {taxonomy.name!r}"
        raise InputError(path, f"{problem} (labels: {_names(report['unknown_labels'])})")
    if report["unknown_labels"]:
        listed = counted(report["unknown_labels"])
        if not drop_unknown:
            problem = f"labels in column {label_column!r} not in the taxonomy {taxonomy.name!r}"
            fix = "add them to the taxonomy or drop them with --drop-unknown"
            raise InputError(path, f"{problem}: {listed}; {fix}")
        notes.append(f"dropped {len(unknown)} fields whose label is not in the taxonomy: {listed}")
    return _finish(path, out, crs, report, notes, id_column)


def read_fields(
    path: str | Path,
    crs: Any,
    id_column: str | None = None,
    *,
    layer: str | None = None,
    x_column: str | None = None,
    y_column: str | None = None,
    labels_crs: Any = "EPSG:4326",
) -> gpd.GeoDataFrame:
    """Fields or points without labels, read and checked as :func:`read_labels` reads them.

    The same columns come back so that preprocessing treats both alike: ``label`` is empty and
    ``code`` is :data:`~cropmeta.ingest.dataset.UNLABELLED_CODE` for every field. No label
    column is read, so a file with one (a parcel register where a few parcels are labelled) is
    read the same as one without.
    ``attrs["label_report"]`` holds the counts of :func:`read_labels` bar ``unknown_labels``.
    """
    path = Path(path)
    frame, ids, report, notes, id_column = _features(
        path, None, id_column, layer, x_column, y_column, labels_crs, "fields file"
    )
    out = gpd.GeoDataFrame(
        {
            "field_id": ids,
            "label": np.full(len(frame), "", dtype=object),
            "code": np.full(len(frame), UNLABELLED_CODE, np.int16),
        },
        geometry=frame.geometry.values,
    ).set_crs(frame.crs)
    out = _clean_geometries(path, out, report, notes, "fields file").reset_index(drop=True)
    return _finish(path, out, crs, report, notes, id_column)


def _features(
    path: Path,
    label_column: str | None,
    id_column: str | None,
    layer: str | None,
    x_column: str | None,
    y_column: str | None,
    labels_crs: Any,
    what: str,
) -> tuple[gpd.GeoDataFrame, np.ndarray, dict[str, Any], list[str], str | None]:
    """The file's features with a geometry column (points built for tables) and their ids.

    Returns the frame, the ids, the report so far, the warnings to log once accepted and the id
    column used. ``label_column`` (None for fields without labels) must exist and, in a long
    table, agree between the rows of an id; ``what`` names the file in messages.
    """
    if not path.exists():
        raise InputError(path, f"{what} not found")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, f"{what} is empty")
    frame = _read_frame(path, layer, what)
    if len(frame) == 0:
        raise InputError(path, f"{what} has no features")
    if label_column is not None:
        _require(path, frame, label_column, "label")
    report: dict[str, Any] = {"rows": len(frame), "duplicate_ids": 0}
    notes: list[str] = []  # warnings, logged once the file is accepted
    table = not isinstance(frame, gpd.GeoDataFrame)
    if table:
        frame = frame.reset_index(drop=True)  # the index is the data row, for messages
        id_column = id_column or next((c for c in ID_NAMES if c in frame.columns), None)
    if id_column is not None:
        _require(path, frame, id_column, "id")
    if not table and frame.crs is None:
        raise InputError(path, f"{what} has no CRS; assign one (e.g. ogr2ogr -a_srs)")
    if table:
        xc, yc = _coord_columns(path, frame, x_column, y_column)
        if id_column is not None:
            same = [*([label_column] if label_column is not None else []), xc, yc]
            frame, report["duplicate_ids"] = _one_row_per_id(path, frame, id_column, same)
        frame = _points(path, frame, xc, yc, labels_crs, report, notes)
    return frame, _field_ids(path, frame, id_column), report, notes, id_column


def _finish(
    path: Path,
    out: gpd.GeoDataFrame,
    crs: Any,
    report: dict[str, Any],
    notes: list[str],
    id_column: str | None,
) -> gpd.GeoDataFrame:
    """Reproject to the raster's CRS, complete the report and log the warnings kept so far."""
    out = out.to_crs(crs)
    if not np.isfinite(out.geometry.bounds.to_numpy()).all():
        raise InputError(path, "some geometries cannot be reprojected to the raster's CRS")
    report.update(
        kept=len(out),
        points=int(out.geom_type.isin(["Point", "MultiPoint"]).sum()),
        id_column=id_column,
    )
    for note in notes:
        log.warning("%s: %s", path, note)
    out.attrs["label_report"] = report
    return out


def _read_frame(path: Path, layer: str | None, what: str = "label file") -> pd.DataFrame:
    """The file's rows: a GeoDataFrame for vector files, a plain DataFrame for tables."""
    suffix = path.suffix.lower()
    try:
        if suffix in TABLE_SUFFIXES:
            with path.open(encoding="utf-8", errors="replace") as f:
                head = f.readline()
            return pd.read_csv(path, sep=max((",", ";", "\t"), key=head.count))
        if suffix in PARQUET_SUFFIXES:
            try:
                return gpd.read_parquet(path)
            except ValueError as exc:  # a plain Parquet table: points from its coordinates
                if "geo metadata" not in str(exc):
                    raise
                return pd.read_parquet(path)
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
        if (layer is None and len(names) > 1) or (layer is not None and layer not in names):
            which = "several layers, choose one" if layer is None else f"no layer {layer!r}"
            raise InputError(path, f"{what} has {which} (layers: {', '.join(names)})")
        return gpd.read_file(path, layer=layer)
    except (RuntimeError, ValueError, OSError) as exc:  # pyogrio, pandas and pyarrow errors
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise InputError(path, f"cannot read {what} ({first})") from None


def _field_ids(path: Path, frame: pd.DataFrame, id_column: str | None) -> np.ndarray:
    """The id column's values, checked to be present and unique; else 1, 2, 3… in file order."""
    if id_column is None:
        return np.arange(1, len(frame) + 1)
    ids = frame[id_column]
    if ids.isna().any():
        raise InputError(path, f"id column {id_column!r} has empty values")
    if ids.duplicated().any():
        dup = _names(ids[ids.duplicated()].unique())
        raise InputError(path, f"id column {id_column!r} has duplicate values: {dup}")
    return ids.to_numpy()


def _coord_columns(
    path: Path, frame: pd.DataFrame, x_column: str | None, y_column: str | None
) -> tuple[str, str]:
    """The table's x and y columns: the ones named, else the first known pair present."""
    if x_column or y_column:
        for name, what in ((x_column, "x"), (y_column, "y")):
            if name is None:
                raise InputError(path, f"{what}_column not given; name both coordinate columns")
            _require(path, frame, name, what)
        return str(x_column), str(y_column)
    lower = {str(c).casefold(): str(c) for c in frame.columns}
    for x, y in COORD_PAIRS:
        if x in lower and y in lower:
            return lower[x], lower[y]
    tried = ", ".join(f"{x}/{y}" for x, y in COORD_PAIRS)
    raise InputError(path, f"no coordinate columns ({tried}) in {_columns(frame)}; name them")


def _one_row_per_id(
    path: Path, frame: pd.DataFrame, id_column: str, same: list[str]
) -> tuple[pd.DataFrame, int]:
    """Collapse a long table (one row per id and date) to its first row per id.

    Rows of one id must agree on label and coordinates; ids that do not are real duplicates.
    """
    counts = frame[id_column].value_counts()
    repeated = int((counts > 1).sum())
    if repeated == 0:
        return frame, 0
    varying = frame.groupby(id_column, sort=False)[same].nunique(dropna=False)
    bad = varying.index[(varying > 1).any(axis=1)]
    if len(bad):
        problem = f"id column {id_column!r} has duplicate values with different label or place"
        raise InputError(path, f"{problem}: {_names(bad)}")
    log.info("%s: long table, %d rows for %d ids; one point per id", path, len(frame), len(counts))
    return frame.drop_duplicates(id_column, keep="first"), repeated


def _points(
    path: Path, frame: pd.DataFrame, xc: str, yc: str, labels_crs: Any, report: dict, notes: list
) -> gpd.GeoDataFrame:
    """Points from coordinate columns; rows without usable coordinates get no geometry.

    Their number goes into ``report["bad_coordinates"]`` and a warning into ``notes``; more
    than :data:`MAX_BAD_COORDINATES` of the rows refuse the file, naming the first.
    """
    try:
        crs = ProjCRS.from_user_input(labels_crs)
    except CRSError:
        raise InputError(path, f"labels_crs {labels_crs!r} is not a CRS") from None
    x = pd.to_numeric(frame[xc], errors="coerce")
    y = pd.to_numeric(frame[yc], errors="coerce")
    bad_x, bad_y = (~np.isfinite(v.to_numpy(float, na_value=np.nan)) for v in (x, y))
    bad = bad_x | bad_y
    report["bad_coordinates"] = int(bad.sum())
    if bad.any():
        first = int(np.argmax(bad))
        columns = [c for c, b in ((xc, bad_x), (yc, bad_y)) if b.any()]
        column = xc if bad_x[first] else yc
        value = frame[column].iloc[first]
        shown = "empty" if pd.isna(value) or not str(value).strip() else repr(value)
        named = ("column " if len(columns) == 1 else "columns ") + ", ".join(map(repr, columns))
        what = f"{int(bad.sum())} of {len(bad)} rows ({bad.mean():.0%}) have a missing or "
        where = f"the first is {data_row(path, int(frame.index[first]))}, {column} {shown}"
        message = f"{what}non-numeric coordinate in {named}; {where}"
        if bad.mean() > MAX_BAD_COORDINATES:
            limit = f"more than {MAX_BAD_COORDINATES:.0%} is refused: fix the table"
            raise InputError(path, f"{message}; {limit}")
        notes.append(f"{message}; those rows are dropped")
    if crs.is_geographic and ((x.abs() > 180) | (y.abs() > 90)).any():
        problem = f"coordinates in {xc!r}/{yc!r} are not longitude/latitude"
        raise InputError(path, f"{problem}; set labels_crs to their CRS")
    geometry = gpd.points_from_xy(x, y)
    geometry[bad] = None
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=crs)


def _clean_geometries(
    path: Path, gdf: gpd.GeoDataFrame, report: dict, notes: list, what: str = "label file"
) -> gpd.GeoDataFrame:
    """Drop null/empty geometries, repair invalid ones; counts go into ``report``, a warning
    about repairs into ``notes``.

    ``structure`` repair keeps a polygon polygonal (a bow-tie becomes two triangles) and drops
    parts that collapse to lines or points; a feature left with nothing is dropped.
    """
    empty = gdf.geometry.isna() | gdf.geometry.is_empty
    gdf = gdf[~empty].copy()
    invalid = ~gdf.geometry.is_valid.to_numpy()
    if invalid.any():
        fixed = shapely.make_valid(
            gdf.geometry.values[invalid], method="structure", keep_collapsed=False
        )
        gdf.loc[invalid, "geometry"] = fixed
        notes.append(f"repaired {int(invalid.sum())} invalid geometries")
    collapsed = gdf.geometry.is_empty
    gdf = gdf[~collapsed]
    report.update(
        features=len(empty),
        empty_dropped=int(empty.sum()),
        repaired=int(invalid.sum()),
        collapsed_dropped=int(collapsed.sum()),
    )
    if len(gdf) == 0:
        raise InputError(path, f"no feature in the {what} has a geometry")
    return gdf


def _require(path: Path, frame: pd.DataFrame, column: str, what: str) -> None:
    if column not in frame.columns:
        raise InputError(path, f"{what} column {column!r} not found (columns: {_columns(frame)})")


def _columns(frame: pd.DataFrame) -> str:
    return _names([str(c) for c in frame.columns if c != "geometry"], limit=40)


def counted(counts: dict[str, int], limit: int = 10) -> str:
    """``{name: count}`` as "'a' (5), 'b' (2)", most frequent first, cut after ``limit``."""
    ranked = sorted(counts.items(), key=lambda item: -item[1])  # stable: ties keep their order
    shown = [f"{n if n == EMPTY_LABEL else repr(n)} ({k})" for n, k in ranked]
    return _names(shown, limit, show=str)


def _names(values: Any, limit: int = 10, show: Callable[[Any], str] = repr) -> str:
    """Up to ``limit`` names, quoted (by ``show``), then how many more there are."""
    values = list(values)
    shown = ", ".join(show(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


#: Metres added around a label file's extent when it bounds the area read (edge pixels).
EXTENT_MARGIN = 100.0


def label_extent(path: str | Path, layer: str | None = None) -> Extent | None:
    """The extent of a vector label file with a CRS (from its header, plus
    :data:`EXTENT_MARGIN`), or None where it has none (a CSV of points, an unreadable file:
    its reader reports that)."""
    try:
        info = pyogrio.read_info(str(path), layer=layer, force_total_bounds=True)
    except Exception:  # the label reader names the problem
        return None
    bounds, crs = info.get("total_bounds"), info.get("crs")
    if bounds is None or crs is None or not np.all(np.isfinite(bounds)):
        return None
    left, bottom, right, top = (float(v) for v in bounds)
    unit = ProjCRS.from_user_input(crs).axis_info[0].unit_name
    pad = EXTENT_MARGIN if unit in ("metre", "meter") else EXTENT_MARGIN / 111_000
    return Extent((left - pad, bottom - pad, right + pad, top + pad), RioCRS.from_user_input(crs))
