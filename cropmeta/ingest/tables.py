"""Pre-extracted time-series tables → region datasets (the same schema rasters produce).

Many users already hold per-sample series (Earth Engine exports, ``sits`` sample tables,
benchmark text files) rather than rasters and field polygons. This module reads such a table
as a :class:`~cropmeta.catalog.TableSpec` describes it, resolves its labels through the shared
taxonomy and regularises every sample with the one shared
:func:`~cropmeta.ingest.prepare.regularise`, so meta-training and adaptation read the result
exactly like a raster-derived region (:mod:`cropmeta.ingest.dataset`).

``long``: CSV or Parquet, one row per (sample, date) and one column per band. ``wide``:
whitespace text, one line per sample, the label then one value per date. For tables,
``field_id`` is the sample id (wide: the 1-based line number), ``n_pixels`` is 1 and ``cx``/``cy``
are the x/y columns in the table's own CRS (NaN without coordinates). A sample may come from
any year: it is placed on the season grid by its own dates' day of year; its observations in
other seasons than its main one are dropped. Absent rows and NaN values are missing
observations and count against the sample's valid fraction.

Numeric labels ("12", "1.200e+01") mean different classes in different data sets, so they are
looked up only among the taxonomy's local names under one data-set tag (``label_names``, e.g.
``tiselac``); label names also fall back to the taxonomy's global, case-insensitive lookup.
Labels the taxonomy does not know (empty ones included) refuse the table unless
``drop_unknown``, so that classes are never lost unnoticed.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import xarray as xr

from cropmeta.catalog import TableSpec
from cropmeta.errors import InputError
from cropmeta.ingest.dataset import Samples, build_region_dataset, save_region
from cropmeta.ingest.labels import EMPTY_LABEL, counted
from cropmeta.ingest.prepare import Preparation, TemporalGrid, regularise
from cropmeta.ingest.table_readers import NUMBER, Table, normalise_label, read_long, read_wide
from cropmeta.ownership import claim
from cropmeta.taxonomy import CropClass, Taxonomy

log = logging.getLogger(__name__)


def resolve_label(label: str, taxonomy: Taxonomy, tag: str | None) -> CropClass | None:
    """The shared class of a normalised label: under ``tag`` first; names also globally."""
    if tag is not None:
        for c in taxonomy.classes:
            local = c.names.get(tag)
            if local is not None and normalise_label(local).casefold() == label.casefold():
                return c
    return None if NUMBER.match(label) else taxonomy.resolve(label)


def _seasons(table: Table, grid: TemporalGrid, known: np.ndarray) -> tuple:
    """Each known sample's season (the year of its mid-season; -1 when it has no in-season
    observation or an unknown label) and which observations belong to it."""
    doy = (table.obs_date - table.obs_date.astype("datetime64[Y]")).astype(np.int64) + 1
    start = table.obs_date - grid.position(doy).astype("timedelta64[D]")
    mid = start + np.timedelta64(grid.length // 2, "D")
    year = mid.astype("datetime64[Y]").astype(np.int64) + 1970
    use = grid.in_season(doy) & known[table.obs_sample]
    pairs = pd.DataFrame({"s": table.obs_sample[use], "k": year[use]})
    best = pairs.value_counts().reset_index().drop_duplicates("s")  # the most observed season
    season = np.full(len(table.ids), -1, np.int64)
    season[best["s"].to_numpy()] = best["k"].to_numpy()
    return season, use & (year == season[table.obs_sample])


def _season_start(year: int, grid: TemporalGrid) -> date:
    first = year if grid.start_doy - 1 + grid.length // 2 < 365 else year - 1
    return date(first, 1, 1) + timedelta(days=grid.start_doy - 1)


def _regularise(table: Table, prep: Preparation, known: np.ndarray) -> tuple:
    """Series (step, band, sample), valid fractions and seasons, one ``regularise`` per season.

    A season's samples share the union of its dates, so an absent row is a missing observation;
    duplicate rows are averaged. Unknown samples come back all-NaN.
    """
    n, n_bands = len(table.ids), len(table.bands)
    season, member = _seasons(table, prep.grid, known)
    series = np.full((len(prep.grid), n_bands, n), np.nan, np.float32)
    fraction = np.zeros(n, np.float32)
    local = np.zeros(n, np.int64)
    for year in np.unique(season[season >= 0]):
        samples = np.flatnonzero(season == year)
        local[samples] = np.arange(len(samples))
        obs = member & (season[table.obs_sample] == year)
        dates, t = np.unique(table.obs_date[obs], return_inverse=True)
        values = table.obs_values[obs]
        where = (t[:, None], np.arange(n_bands)[None, :], local[table.obs_sample[obs]][:, None])
        sums = np.zeros((len(dates), n_bands, len(samples)))
        counts = np.zeros_like(sums)
        np.add.at(sums, where, np.nan_to_num(values))
        np.add.at(counts, where, ~np.isnan(values))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, sums / counts, np.nan).astype(np.float32)
        doys = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
        series[:, :, samples], fraction[samples] = regularise(mean, doys, prep)
    return series, fraction, season


def _resolve(
    path: Path, table: Table, taxonomy: Taxonomy, tag: str | None, drop_unknown: bool
) -> tuple:
    """Shared codes per sample (0 = unknown) and the unknown labels' counts, most frequent
    first; unknown labels refuse the table unless ``drop_unknown`` (and some label is known)."""
    if tag is not None and not any(tag in c.names for c in taxonomy.classes):
        raise InputError(path, f"taxonomy {taxonomy.name!r} has no local names tagged {tag!r}")
    lookup = {str(name): resolve_label(str(name), taxonomy, tag) for name in set(table.labels)}
    codes = np.array([lookup[n].code if lookup[n] else 0 for n in table.labels], np.int16)
    counts = {n or EMPTY_LABEL: int((table.labels == n).sum()) for n, c in lookup.items() if not c}
    unknown = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    numeric = tag is None and any(NUMBER.match(n) for n in unknown)
    hint = " (numeric labels need `label_names`, a taxonomy name tag)" if numeric else ""
    if len(unknown) == len(lookup):
        raise InputError(path, f"no label is in the taxonomy: {', '.join(unknown)}{hint}")
    if unknown and not drop_unknown:
        problem = f"labels not in the taxonomy {taxonomy.name!r}: {counted(unknown)}{hint}"
        fix = "add them to the taxonomy or drop them with --drop-unknown"
        raise InputError(path, f"{problem}; {fix}")
    return codes, unknown


def _field_ids(ids: np.ndarray) -> np.ndarray:
    """Sample ids as int64 when all are whole numbers (as field ids are), else as text."""
    number = pd.to_numeric(pd.Series(ids), errors="coerce").to_numpy(np.float64)
    whole = np.isfinite(number).all() and (number % 1 == 0).all()
    return number.astype(np.int64) if whole else ids.astype(str)


def preprocess_table(
    spec: TableSpec,
    out: Path | None = None,
    *,
    region: str,
    taxonomy: Taxonomy,
    grid: TemporalGrid,
    root: Path | None = None,
    min_valid_fraction: float | None = None,
    label_names: str | None = None,
    overwrite: bool = False,
    drop_unknown: bool = False,
) -> xr.Dataset:
    """Read a long or wide time-series table into a region dataset (saved atomically if ``out``).

    ``root`` anchors a relative ``spec.path`` (a catalog's folder); ``label_names`` is the
    taxonomy tag under which this data set's labels are listed (default: the spec's, if any).
    Labels the taxonomy does not know raise :class:`InputError` unless ``drop_unknown``; then
    their samples are dropped with one warning, like samples with too few valid observations,
    and counted in the ``summary`` attribute. Unreadable or inconsistent input raises
    :class:`InputError`, never after a warning.
    """
    path = Path(spec.path) if root is None else Path(root) / spec.path
    if not path.is_file():
        raise InputError(path, "file not found")
    if out is not None:
        claim(out, "region-dataset", inputs=[path], overwrite=overwrite)
    tag = label_names or getattr(spec, "label_names", None)
    table = read_long(path, spec) if spec.format == "long" else read_wide(path, spec)
    table.obs_values = table.obs_values * np.float32(spec.scale) + np.float32(spec.offset)
    try:
        crs = pyproj.CRS.from_user_input(spec.crs).to_wkt()
    except pyproj.exceptions.CRSError:
        raise InputError(path, f"unknown CRS {spec.crs!r}") from None
    codes, unknown = _resolve(path, table, taxonomy, tag, drop_unknown)
    prep = Preparation(bands=table.bands, quality_band=None, invalid_classes=[], grid=grid)
    if min_valid_fraction is not None:
        prep.min_valid_fraction = min_valid_fraction
    series, fraction, season = _regularise(table, prep, codes > 0)
    keep = ~np.isnan(series).any(axis=(0, 1))
    if not keep.any():
        raise InputError(path, "no sample has enough valid observations in the season")
    if unknown:
        listed = counted(unknown)
        count = sum(unknown.values())
        log.warning(
            "%s: dropped %d samples whose label is not in the taxonomy: %s", path, count, listed
        )
    seasons = pd.Series(season[keep]).value_counts()
    summary = {
        "fields_in_file": len(table.ids),
        "kept": int(keep.sum()),
        "unknown_label": sum(unknown.values()),
        "unknown_labels": unknown,
        "no_observations_in_season": int(((season < 0) & (codes > 0)).sum()),
        "too_few_valid_observations": int(((season >= 0) & ~keep).sum()),
        "seasons": {str(_season_start(int(y), grid)): int(k) for y, k in seasons.items()},
    }
    samples = Samples(
        series=series[:, :, keep],
        codes=codes[keep],
        labels=table.labels[keep],
        field_ids=_field_ids(table.ids[keep]),
        valid_fraction=fraction[keep],
        n_pixels=np.ones(int(keep.sum()), np.int32),
        cx=table.cx[keep],
        cy=table.cy[keep],
    )
    ds = build_region_dataset(
        samples,
        region=region,
        prep=prep,
        season_start=_season_start(int(seasons.index[0]), grid),  # the commonest season
        crs_wkt=crs,
        taxonomy=taxonomy,
        acquisition_dates=[str(d) for d in np.unique(table.obs_date)],
        summary=summary,
        inputs={
            "table": str(path.resolve()),
            "spec": spec.model_dump(mode="json"),
            "label_names": tag,
            "taxonomy": taxonomy.name,
            "min_valid_fraction": prep.min_valid_fraction,
            "drop_unknown": drop_unknown,
        },
    )
    if out is not None:
        save_region(ds, out)
    return ds
