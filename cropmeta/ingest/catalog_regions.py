"""Preprocess a region as a catalog describes it: rasters and labelled fields, or a table."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from cropmeta.catalog import load_catalog
from cropmeta.errors import InputError
from cropmeta.ingest.options import PreprocessOptions, preprocess_options
from cropmeta.ingest.prepare import TemporalGrid
from cropmeta.ingest.preprocess import Progress, preprocess_region
from cropmeta.ingest.tables import preprocess_table
from cropmeta.ownership import claim


def preprocess_catalog_region(
    catalog: str | Path,
    region: str,
    out: str | Path | None = None,
    options: PreprocessOptions | None = None,
    *,
    overwrite: bool = False,
    user_taxonomy: str | Path | None = None,
    progress: Progress | None = None,
    **changes,
) -> xr.Dataset:
    """Preprocess the region ``region`` as a catalog YAML describes it.

    Raster regions go through :func:`cropmeta.ingest.preprocess.preprocess_region`, table
    regions through :func:`cropmeta.ingest.tables.preprocess_table`. ``options`` (or keyword
    ``changes`` of them: :class:`~cropmeta.ingest.options.PreprocessOptions`) are completed by
    the catalog entry: its ``season`` is the grid unless one is given, its ``drop_unknown``
    drops unknown labels, its ``non_crop_pixels`` applies unless a number is given. Labels are
    read with the catalog's taxonomy, a user's taxonomy file ``user_taxonomy`` merged over it
    (:mod:`cropmeta.taxonomy`).
    """
    o = preprocess_options(options, **changes)
    cat = load_catalog(catalog)
    entry = cat.region(region)
    taxonomy = cat.load_taxonomy(user_taxonomy)  # a bad file is refused before anything else
    if out is not None:
        inputs = [catalog, *cat.inputs([region]), *([user_taxonomy] if user_taxonomy else [])]
        claim(out, "region-dataset", inputs=inputs, overwrite=overwrite)
    o = o.updated(
        grid=o.grid or (TemporalGrid(**entry.season) if entry.season else None),
        drop_unknown=o.drop_unknown or entry.drop_unknown,
        non_crop_pixels=o.non_crop_pixels or entry.non_crop_pixels,
    )
    if entry.table is not None:
        if o.non_crop_pixels:
            raise InputError(catalog, f"region {region!r} is a table: non-crop pixels need tiles")
        return preprocess_table(
            entry.table,
            out,
            region=entry.name,
            taxonomy=taxonomy,
            grid=o.grid or TemporalGrid(),
            root=cat.root,
            min_valid_fraction=o.min_valid_fraction,
            overwrite=overwrite,
            drop_unknown=o.drop_unknown,
        )
    if entry.raster_spec() is None or entry.labels is None or entry.label_column is None:
        raise InputError(
            catalog,
            f"region {region!r} needs tiles (or raster), labels and label_column, or a table",
        )
    return preprocess_region(
        entry.raster_spec(),
        cat.path(entry.labels),
        entry.label_column,
        out,
        o,
        id_column=entry.id_column,
        region=entry.name,
        taxonomy=taxonomy,
        layer=entry.labels_layer,
        x_column=entry.x_column,
        y_column=entry.y_column,
        labels_crs=entry.labels_crs,
        root=cat.root,
        overwrite=overwrite,
        progress=progress,
    )
