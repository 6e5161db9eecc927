"""Preprocess a region: per-date tiles + labelled fields → a region dataset of time series.

:func:`preprocess_unlabelled` does the same with fields that carry no label (or with random
pixels of the tiles), for transductive adaptation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.features
import xarray as xr

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.aggregate import field_statistics, pixel_values, sample_pixels
from cropmeta.ingest.dataset import Samples, build_region_dataset, joined, save_region
from cropmeta.ingest.labels import label_extent, read_fields, read_labels
from cropmeta.ingest.options import PreprocessOptions, preprocess_options
from cropmeta.ingest.pixels import NON_CROP, non_crop_samples, random_pixel_samples
from cropmeta.ingest.prepare import (
    QA_PIXEL_INVALID_BITS,
    Preparation,
    TemporalGrid,
    regularise,
)
from cropmeta.ingest.sources import Extent, RasterStack, StacStack, open_raster, pin_grid
from cropmeta.ownership import claim
from cropmeta.taxonomy import Taxonomy, load_taxonomy

Progress = Callable[[int, int], None]
#: the options a labelled region dataset records; an unlabelled one, those of its fields
RECORDED_OPTIONS = {
    "statistic", "sampling", "pixels_per_field", "buffer", "min_pixels", "drop_unknown",
    "non_crop_pixels", "non_crop_margin", "seed",
}  # fmt: skip
FIELD_OPTIONS = {"statistic", "sampling", "pixels_per_field", "buffer", "min_pixels"}


def burn_fields(fields: gpd.GeoDataFrame, stack) -> np.ndarray:
    """Field numbers 1..n on the tiles' grid (0 = no field); points burn the pixel they fall in."""
    shapes = ((geom, i + 1) for i, geom in enumerate(fields.geometry))
    return rasterio.features.rasterize(
        shapes, out_shape=(stack.height, stack.width), transform=stack.transform, dtype="int32"
    )


def preprocess_region(
    tiles: str | Path | RasterSpec,
    labels: str | Path,
    label_column: str,
    out: str | Path | None = None,
    options: PreprocessOptions | None = None,
    *,
    id_column: str | None = None,
    region: str | None = None,
    taxonomy: Taxonomy | None = None,
    user_taxonomy: str | Path | None = None,
    layer: str | None = None,
    x_column: str | None = None,
    y_column: str | None = None,
    labels_crs: str = "EPSG:4326",
    root: Path | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
    **changes,
) -> xr.Dataset:
    """Turn time-resolved rasters and a label file into a region dataset (saved if ``out``).

    ``tiles`` is a folder of one multi-band GeoTIFF per date, or a :class:`RasterSpec` for the
    other layouts (single-band files by pattern, STAC, datacube), relative to ``root``.

    Pixels flagged by the quality band (the spec's ``quality_band``, else ``SCL`` when present;
    ``invalid_classes``, by default the SCL classes for clouds, shadows, snow, saturated and no
    data) or outside the spec's ``valid_range`` are masked first; both rules are recorded in the
    preparation, so map time masks alike. Then either every field becomes one sample
    (``sampling="field"``: the ``statistic`` of its valid pixels per date, after shrinking the
    polygon by ``buffer`` metres against mixed edge pixels), or up to ``pixels_per_field`` random
    pixels of each field become samples (``"pixels"``; points are always single pixels). Series
    are regularised onto the day-of-year grid (see :mod:`cropmeta.ingest.prepare`). Polygons with
    fewer than ``min_pixels`` pixels, fields outside the tiles and series with too few valid
    observations are dropped and counted in the dataset's ``summary`` attribute.

    ``layer``, ``x_column``/``y_column`` and ``labels_crs`` describe the label file when it is a
    multi-layer GeoPackage or a CSV of points (see :func:`cropmeta.ingest.labels.read_labels`);
    labels the taxonomy does not know refuse the label file unless ``drop_unknown``. The
    taxonomy is ``taxonomy``, else the packaged one with a user's taxonomy file
    ``user_taxonomy`` merged over it (:mod:`cropmeta.taxonomy`).
    ``non_crop_pixels`` N adds N random pixels at least ``non_crop_margin`` metres from every
    polygon or point of the label file as the taxonomy's ``non_crop`` class, so a model learns
    to leave roads, buildings and woods out of the crops (:mod:`cropmeta.ingest.pixels`).
    ``out`` must not be an input, nor an existing path that is not a region dataset cropmeta
    wrote, unless ``overwrite`` (:func:`cropmeta.ownership.claim`).

    The options named above (``grid``, ``bands``, ``invalid_classes``, ``statistic``…) are the
    fields of ``options`` (:class:`~cropmeta.ingest.options.PreprocessOptions`), or keyword
    ``changes`` of them (``statistic="median"``); a misspelt one is an error.
    """
    o = preprocess_options(options, **changes)
    spec = tiles if isinstance(tiles, RasterSpec) else RasterSpec(path=str(tiles))
    tiles = Path(root or ".") / spec.path
    taxonomy = taxonomy or load_taxonomy(extra=user_taxonomy)
    if out is not None:
        inputs = [tiles, labels, user_taxonomy]
        claim(out, "region-dataset", inputs=inputs, overwrite=overwrite)
    stack, prep = _prepared_stack(spec, root, o, label_extent(labels, layer))
    fields = read_labels(
        labels,
        label_column,
        taxonomy,
        stack.crs,
        id_column,
        layer=layer,
        x_column=x_column,
        y_column=y_column,
        labels_crs=labels_crs,
        drop_unknown=o.drop_unknown,
    )
    samples, summary = _field_samples(
        fields, stack, prep, o, labels=Path(labels), tiles=tiles, progress=progress
    )
    if o.non_crop_pixels:
        every = read_fields(
            labels, stack.crs, id_column, layer=layer, x_column=x_column, y_column=y_column,
            labels_crs=labels_crs,
        )  # fmt: skip
        samples, summary = _with_non_crop(
            samples, summary, stack, prep, burn_fields(every, stack), taxonomy, labels,
            o.non_crop_pixels, o.non_crop_margin, o.seed, tiles, progress,
        )  # fmt: skip
    ds = _region_dataset(
        samples,
        stack,
        prep,
        region=region or Path(tiles).resolve().parent.name,
        taxonomy=taxonomy,
        summary=summary,
        inputs=dict(
            tiles=str(Path(tiles).resolve()),
            raster=recorded_spec(spec, stack),
            band_scaling="scale/offset from the spec where given, else from the files' metadata",
            labels=str(Path(labels).resolve()),
            label_column=label_column,
            id_column=id_column,
            taxonomy=taxonomy.name,
            **o.model_dump(include=RECORDED_OPTIONS),
        ),
    )
    if out is not None:
        save_region(ds, out)
    return ds


def _with_non_crop(
    samples: Samples,
    summary: dict,
    stack: RasterStack,
    prep: Preparation,
    fields: np.ndarray,
    taxonomy: Taxonomy,
    labels: str | Path,
    n: int,
    margin: float,
    seed: int,
    tiles: Path,
    progress: Progress | None,
) -> tuple[Samples, dict]:
    """``samples`` and ``n`` non-crop pixel samples after them (:func:`non_crop_samples`),
    drawn with their own random stream so the fields' samples do not change."""
    non_crop = taxonomy.resolve(NON_CROP)
    if non_crop is None:
        raise InputError(labels, f"the taxonomy {taxonomy.name!r} has no {NON_CROP!r} class")
    rng = np.random.default_rng([seed, 1])
    extra, found = non_crop_samples(stack, prep, fields, n, margin, non_crop.code, rng, tiles,
                                    progress)  # fmt: skip
    if not np.issubdtype(samples.field_ids.dtype, np.integer):  # text ids: the pixel's, as text
        extra.field_ids = np.array([f"pixel {-i - 1}" for i in extra.field_ids], dtype=object)
    return joined(samples, extra), summary | found


def preprocess_unlabelled(
    tiles: str | Path | RasterSpec,
    fields: str | Path | None = None,
    out: str | Path | None = None,
    *,
    options: PreprocessOptions | None = None,
    sample_pixels: int | None = None,
    id_column: str | None = None,
    region: str | None = None,
    layer: str | None = None,
    x_column: str | None = None,
    y_column: str | None = None,
    labels_crs: str = "EPSG:4326",
    root: Path | None = None,
    progress: Progress | None = None,
    overwrite: bool = False,
    **changes,
) -> xr.Dataset:
    """Tiles and fields *without labels* → an unlabelled region dataset (saved if ``out``).

    Its series serve transductive adaptation (``adapt --unlabelled``: label shift,
    self-training), so they are prepared exactly as :func:`preprocess_region` prepares labelled
    ones — same masking, grid, bands, per-field statistic or per-pixel sampling, same options
    with the same meaning — from ``fields``, a polygon or point file read by
    :func:`cropmeta.ingest.labels.read_fields` (a label column, if any, is not read). The
    dataset is marked unlabelled (see :mod:`cropmeta.ingest.dataset`), so stages that need
    labels refuse it.

    Without ``fields``, ``sample_pixels`` (N) random pixels of the tiles' valid area become the
    samples (seeded by ``seed``): pixels are drawn uniformly without replacement, those whose
    series is unusable (nodata, or too few valid acquisitions) are replaced by further draws,
    for at most :data:`~cropmeta.ingest.pixels.PIXEL_ROUNDS` passes over the tiles; fewer than
    N usable pixels are counted in the ``summary``. Their ``field_id`` is the pixel's index
    ``row * width + col``. Give one of ``fields`` and ``sample_pixels``. Labels are not read,
    so ``drop_unknown`` does not apply, and non-crop pixels (labelled samples) are refused.
    """
    o = preprocess_options(options, **changes)
    spec = tiles if isinstance(tiles, RasterSpec) else RasterSpec(path=str(tiles))
    tiles = Path(root or ".") / spec.path
    if (fields is None) == (sample_pixels is None):
        raise InputError(tiles, "give a fields file or a number of pixels to sample (not both)")
    if o.non_crop_pixels:
        raise InputError(tiles, "non-crop pixels are labelled samples: not in an unlabelled set")
    if out is not None:
        inputs = [tiles, *([] if fields is None else [fields])]
        claim(out, "region-dataset", inputs=inputs, overwrite=overwrite)
    extent = None if fields is None else label_extent(fields, layer)
    stack, prep = _prepared_stack(spec, root, o, extent)
    if fields is not None:
        table = read_fields(
            fields,
            stack.crs,
            id_column,
            layer=layer,
            x_column=x_column,
            y_column=y_column,
            labels_crs=labels_crs,
        )
        samples, summary = _field_samples(
            table, stack, prep, o, labels=Path(fields), tiles=tiles, progress=progress,
            unlabelled=True,
        )  # fmt: skip
        how = dict(
            fields=str(Path(fields).resolve()),
            id_column=id_column,
            **o.model_dump(include=FIELD_OPTIONS),
        )
    else:
        assert sample_pixels is not None
        samples, summary = random_pixel_samples(
            stack, prep, sample_pixels, np.random.default_rng(o.seed), tiles, progress
        )
        how = dict(fields=None, sampling="random-pixels", sample_pixels=sample_pixels)
    ds = _region_dataset(
        samples,
        stack,
        prep,
        region=region or Path(tiles).resolve().parent.name,
        taxonomy=None,
        summary=summary,
        inputs=dict(
            tiles=str(Path(tiles).resolve()),
            raster=recorded_spec(spec, stack),
            band_scaling="scale/offset from the spec where given, else from the files' metadata",
            unlabelled=True,
            **how,
            seed=o.seed,
        ),
    )
    if out is not None:
        save_region(ds, out)
    return ds


#: Quality bands used by default, where the rasters hold one: Sentinel-2's scene classification,
#: Landsat Collection 2's bit flags.
QUALITY_BANDS = ("SCL", "QA_PIXEL")


def recorded_spec(spec: RasterSpec, stack: RasterStack) -> dict:
    """The raster spec as a region dataset records it: for STAC items, with the grid they were
    read on and the asset each band came from, so a map can read the same pixels."""
    record = pin_grid(spec, stack).model_dump(mode="json")
    if isinstance(stack, StacStack):
        record["assets"] = stack.asset_keys
    return record


def _prepared_stack(
    spec: RasterSpec, root: Path | None, o: PreprocessOptions, extent: Extent | None = None
) -> tuple[RasterStack, Preparation]:
    """The opened rasters and the preparation they are read with (bands checked present);
    ``extent``: the labels', which bounds what a mosaic of tiles reads."""
    stack = open_raster(spec, root, extent)
    found = [q for q in QUALITY_BANDS if q in stack.band_names]
    quality = spec.quality_band or (found[0] if found else None)
    if quality is not None:
        stack.band_index(quality)
    bands = o.bands or [b for b in stack.band_names if b != quality]
    for b in bands:
        stack.band_index(b)
    prep = Preparation(
        bands=bands,
        quality_band=quality,
        grid=o.grid or TemporalGrid(),
        valid_range=spec.valid_range,
        min_valid_fraction=o.min_valid_fraction,
    )
    if o.invalid_classes is not None:
        prep.invalid_classes = list(o.invalid_classes)
    elif quality is not None and quality.casefold() == "qa_pixel":  # Landsat: bit flags
        prep.invalid_classes, prep.invalid_bits = [], list(QA_PIXEL_INVALID_BITS)
    return stack, prep


def _field_samples(
    fields: gpd.GeoDataFrame,
    stack: RasterStack,
    prep: Preparation,
    o: PreprocessOptions,
    *,
    labels: Path,
    tiles: Path,
    progress: Progress | None,
    unlabelled: bool = False,
) -> tuple[Samples, dict]:
    """The samples of ``fields`` (read by ``read_labels`` or ``read_fields``) and the summary
    of what was kept and dropped; see :func:`preprocess_region`."""
    label_report = dict(fields.attrs.get("label_report", {}))
    polygonal = fields.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if o.buffer > 0:
        shrunk = fields.geometry.buffer(-o.buffer)
        fields.loc[polygonal, "geometry"] = shrunk[polygonal]
        fields = fields[~fields.geometry.is_empty].reset_index(drop=True)
        polygonal = fields.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()

    ids = burn_fields(fields, stack)
    pixels = np.bincount(ids.ravel(), minlength=len(fields) + 1)[1:]
    if not pixels.any():
        raise InputError(labels, f"no {'' if unlabelled else 'labelled '}field overlaps the tiles")
    large_enough = (pixels >= o.min_pixels) | (~polygonal & (pixels > 0))
    ids[~np.concatenate([[True], large_enough])[ids]] = 0

    if o.sampling == "pixels":
        rows, cols, number = sample_pixels(ids, o.pixels_per_field, np.random.default_rng(o.seed))
        obs = pixel_values(stack, rows, cols, prep, progress)
        index = number - 1
        xs, ys = rasterio.transform.xy(stack.transform, rows, cols)
        centres = np.column_stack([xs, ys]) if len(rows) else np.zeros((0, 2))
        n_pixels = np.ones(len(rows), np.int32)
    else:
        obs = field_statistics(stack, ids, len(fields), prep, o.statistic, 0.3, progress)
        index = np.arange(len(fields))
        c = fields.geometry.centroid
        centres = np.column_stack([c.x.to_numpy(), c.y.to_numpy()])
        n_pixels = pixels
    series, fraction = regularise(obs, stack.doys, prep)
    usable = ~np.isnan(series).any(axis=(0, 1)) & large_enough[index]
    if not usable.any():
        raise InputError(tiles, "every field's series is masked (clouds or nodata throughout)")

    field_ok = np.zeros(len(fields), bool)
    field_ok[index[usable]] = True
    summary = {
        "labels": label_report,
        "fields_used": int(field_ok.sum()),
        "samples": int(usable.sum()),
        "outside_tiles": int((pixels == 0).sum()),
        "too_small": int(((pixels > 0) & ~large_enough).sum()),
        "too_few_valid_observations": int((large_enough & (pixels > 0) & ~field_ok).sum()),
    }
    keep = index[usable]
    chosen = fields.iloc[keep]
    samples = Samples(
        series=series[:, :, usable],
        codes=chosen["code"].to_numpy(),
        labels=chosen["label"].to_numpy(),
        field_ids=chosen["field_id"].to_numpy(),
        valid_fraction=fraction[usable],
        n_pixels=n_pixels[usable],
        cx=centres[usable, 0],
        cy=centres[usable, 1],
    )
    return samples, summary


def _region_dataset(
    samples: Samples,
    stack: RasterStack,
    prep: Preparation,
    *,
    region: str,
    taxonomy: Taxonomy | None,
    summary: dict,
    inputs: dict,
) -> xr.Dataset:
    """The region dataset of ``samples``: unlabelled when no ``taxonomy`` is given."""
    grid = prep.grid
    in_season = [d for d in stack.dates if grid.in_season(np.array([d.timetuple().tm_yday]))[0]]
    return build_region_dataset(
        samples,
        region=region,
        prep=prep,
        season_start=grid.season_start((in_season or stack.dates)[0]),
        crs_wkt=stack.crs.to_wkt(),
        taxonomy=taxonomy,
        acquisition_dates=[d.isoformat() for d in stack.dates],
        summary=summary,
        inputs=inputs,
        unlabelled=taxonomy is None,
    )
