"""Preprocess a region: per-date tiles + labelled fields → a region dataset of field series."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import numpy as np
import rasterio.features
import xarray as xr

import cropmeta
from cropmeta.catalog import Taxonomy, load_taxonomy
from cropmeta.errors import InputError
from cropmeta.ingest.dataset import save_region
from cropmeta.ingest.labels import read_labels
from cropmeta.ingest.prepare import Preparation, TemporalGrid, regularise
from cropmeta.ingest.tiles import TileStack, open_tiles

Progress = Callable[[int, int], None]


def _field_means(
    stack: TileStack,
    ids: np.ndarray,
    n_fields: int,
    prep: Preparation,
    min_share: float,
    progress: Progress | None,
) -> np.ndarray:
    """Mean reflectance of each field's valid pixels per date → (time, band, field), NaN if few."""
    n_bands = len(prep.bands)
    pixels = np.bincount(ids.ravel(), minlength=n_fields + 1)[1:]
    out = np.full((len(stack.dates), n_bands, n_fields), np.nan, np.float32)
    for t in range(len(stack.dates)):
        sums = np.zeros((n_bands, n_fields + 1))
        counts = np.zeros(n_fields + 1)
        for win in stack.windows():
            vals = stack.read(t, prep, win)
            block = ids[win.row_off : win.row_off + win.height]
            ok = (block > 0) & ~np.isnan(vals).any(axis=0)
            fid = block[ok]
            counts += np.bincount(fid, minlength=n_fields + 1)
            for b in range(n_bands):
                sums[b] += np.bincount(fid, weights=vals[b][ok], minlength=n_fields + 1)
        enough = counts[1:] >= np.maximum(1, min_share * pixels)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[t][:, enough] = (sums[:, 1:] / counts[1:])[:, enough]
        if progress:
            progress(t + 1, len(stack.dates))
    return out


def preprocess_region(
    tiles: str | Path,
    labels: str | Path,
    label_column: str,
    out: str | Path | None = None,
    *,
    id_column: str | None = None,
    region: str | None = None,
    taxonomy: Taxonomy | None = None,
    grid: TemporalGrid | None = None,
    bands: list[str] | None = None,
    min_pixels: int = 4,
    invalid_classes: list[int] | None = None,
    progress: Progress | None = None,
) -> xr.Dataset:
    """Turn a folder of per-date tiles and a label file into a region dataset (saved if ``out``).

    Pixels flagged by the scene classification (``invalid_classes``, by default clouds, shadows,
    snow, saturated and no data) are masked before each field's mean is taken; the per-date
    means are then regularised onto the day-of-year grid (see :mod:`cropmeta.ingest.prepare`).
    Fields too small, outside the tiles, or with too few valid observations are dropped and
    counted in the dataset's ``summary`` attribute.
    """
    stack = open_tiles(tiles)
    taxonomy = taxonomy or load_taxonomy()
    quality = "SCL" if "SCL" in stack.band_names else None
    bands = bands or [b for b in stack.band_names if b != quality]
    for b in bands:
        stack.band_index(b)
    prep = Preparation(bands=bands, quality_band=quality, grid=grid or TemporalGrid())
    if invalid_classes is not None:
        prep.invalid_classes = list(invalid_classes)
    fields = read_labels(labels, label_column, taxonomy, stack.crs, id_column)

    shapes = ((geom, i + 1) for i, geom in enumerate(fields.geometry))
    ids = rasterio.features.rasterize(
        shapes, out_shape=(stack.height, stack.width), transform=stack.transform, dtype="int32"
    )
    pixels = np.bincount(ids.ravel(), minlength=len(fields) + 1)[1:]
    if not pixels.any():
        raise InputError(labels, "no labelled field overlaps the tiles")
    obs = _field_means(stack, ids, len(fields), prep, 0.3, progress)
    series, fraction = regularise(obs, stack.doys, prep)
    keep = (pixels >= min_pixels) & ~np.isnan(series).any(axis=(0, 1))
    if not keep.any():
        raise InputError(tiles, "every field's series is masked (clouds or nodata throughout)")

    summary = {
        "fields_in_file": len(fields),
        "kept": int(keep.sum()),
        "outside_tiles": int((pixels == 0).sum()),
        "too_small": int(((pixels > 0) & (pixels < min_pixels)).sum()),
        "too_few_valid_observations": int(((pixels >= min_pixels) & ~keep).sum()),
    }
    ds = _to_dataset(stack, fields[keep], series[:, :, keep], fraction[keep], pixels[keep], prep)
    codes = sorted(set(ds["code"].values.tolist()))
    ds.attrs.update(
        region=region or Path(tiles).resolve().parent.name,
        classes=json.dumps(
            [
                {"code": c, "name": taxonomy.by_code(c).name, "colour": taxonomy.by_code(c).colour}
                for c in codes
            ]
        ),
        summary=json.dumps(summary),
        provenance=json.dumps(
            {
                "tiles": str(Path(tiles).resolve()),
                "labels": str(Path(labels).resolve()),
                "label_column": label_column,
                "id_column": id_column,
                "taxonomy": taxonomy.name,
                "min_pixels": min_pixels,
                "versions": {
                    "cropmeta": cropmeta.__version__,
                    "python": platform.python_version(),
                    **{m: version(m) for m in ("numpy", "rasterio", "geopandas", "xarray", "zarr")},
                },
            }
        ),
    )
    if out is not None:
        save_region(ds, out)
    return ds


def _to_dataset(stack, fields, series, fraction, pixels, prep: Preparation) -> xr.Dataset:
    year = stack.dates[len(stack.dates) // 2].year
    doys = prep.grid.doys()
    times = [np.datetime64(date(year, 1, 1) + timedelta(days=int(d) - 1)) for d in doys]
    centroids = fields.geometry.centroid
    return xr.Dataset(
        {
            "x": (("sample", "time", "band"), np.transpose(series, (2, 0, 1))),
            "code": ("sample", fields["code"].to_numpy().astype(np.int16)),
            "label": ("sample", fields["label"].to_numpy().astype(str)),
            "field_id": ("sample", fields["field_id"].to_numpy().astype(np.int64)),
            "valid_fraction": ("sample", fraction),
            "n_pixels": ("sample", pixels.astype(np.int32)),
            "cx": ("sample", centroids.x.to_numpy()),
            "cy": ("sample", centroids.y.to_numpy()),
        },
        coords={
            "time": np.array(times, dtype="datetime64[ns]"),
            "doy": ("time", doys),
            "band": prep.bands,
        },
        attrs={
            "crs": stack.crs.to_wkt(),
            "preparation": prep.model_dump_json(),
            "acquisition_dates": json.dumps([d.isoformat() for d in stack.dates]),
        },
    )


def preprocess_catalog_region(
    catalog: str | Path, region: str, out: str | Path | None = None, **kwargs
) -> xr.Dataset:
    """Preprocess the region ``region`` as a catalog YAML describes it (paths, label column)."""
    from cropmeta.catalog import load_catalog

    cat = load_catalog(catalog)
    entry = cat.region(region)
    return preprocess_region(
        cat.path(entry.tiles),
        cat.path(entry.labels),
        entry.label_column,
        out,
        id_column=entry.id_column,
        region=entry.name,
        taxonomy=cat.load_taxonomy(),
        **kwargs,
    )
