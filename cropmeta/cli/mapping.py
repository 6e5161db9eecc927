"""Mapping commands: fields worth labelling next, crop maps, and map previews."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cropmeta.cli.options import (
    MANY,
    CrsOpt,
    LayoutOpt,
    OffsetOpt,
    Overwrite,
    PatternOpt,
    ResolutionOpt,
    ScaleOpt,
    Seed,
    SuggestMethod,
    Uncertainty,
    count,
    raster_spec,
    real,
)
from cropmeta.cli.progress import one_line_errors
from cropmeta.progress import progress_bar


@one_line_errors
def suggest_labels(
    model: Annotated[Path, typer.Option(help="Meta-trained model folder (not an adapted one).")],
    fields: Annotated[Path, typer.Option(help="The region's field polygons (no labels needed).")],
    tiles: Annotated[Path, typer.Option(help="The region's rasters (see --layout).")],
    budget: Annotated[int, count("How many fields to propose for labelling.", hi=MANY)],
    out: Annotated[Path, typer.Option(help="GeoPackage of the proposed fields to write.")],
    method: Annotated[
        SuggestMethod,
        typer.Option(
            help="kcenter (farthest-first coverage; nested priority) or kmeans (the field "
            "nearest each k-means centre, largest cluster first)."
        ),
    ] = "kcenter",
    layout: LayoutOpt = "per-date",
    pattern: PatternOpt = None,
    scale: ScaleOpt = None,
    offset: OffsetOpt = None,
    overwrite: Overwrite = False,
    seed: Seed = 0,
) -> None:
    """Propose which fields to label first: the meta-model embeds every field's series, and
    BUDGET fields that cover that embedding space are written in priority order."""
    from cropmeta.mapping.suggest import suggest_labels as suggest

    spec = raster_spec(tiles, layout, pattern, scale, offset)
    method = SuggestMethod(method).value
    with progress_bar("suggest-labels") as bar:
        chosen = suggest(
            model, fields, spec, budget, out, seed=seed, method=method, progress=bar,
            overwrite=overwrite,
        )  # fmt: skip
    typer.echo(f"{len(chosen)} fields to label first ({method}), priority 1..{len(chosen)}: {out}")


@one_line_errors
def map_(
    model: Annotated[Path, typer.Option(help="Adapted model folder.")],
    tiles: Annotated[Path, typer.Option(help="Rasters to classify (see --layout).")],
    out: Annotated[Path, typer.Option(help="Crop-map GeoTIFF (COG) to write.")],
    block: Annotated[int, count("Block size in pixels (the unit of work).", 16, 8192)] = 256,
    probabilities: Annotated[
        bool, typer.Option(help="Also write OUT.probabilities.tif: one band per class, percent.")
    ] = False,
    uncertainty: Annotated[
        Uncertainty,
        typer.Option(help="Also write an uncertainty band: entropy or margin (OUT.<kind>.tif)."),
    ] = "none",
    min_probability: Annotated[
        float,
        real(
            "Leave a pixel unclassified (nodata) when its most probable class is below this "
            "probability: no guess where the model is unsure (roads, built-up land).",
            0.0,
            1.0,
        ),
    ] = 0.0,
    aoi: Annotated[
        Path | None,
        typer.Option(help="Polygons (AOI or field parcels) outside which pixels stay nodata."),
    ] = None,
    fields: Annotated[
        Path | None,
        typer.Option(
            help="Field polygons: OUT.fields.gpkg gets class, probability, uncertainty per field."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        count(
            "Local Dask worker processes (default: the cores not already busy; 1 = no Dask).",
            hi=1024,
        ),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a running Dask scheduler (e.g. tcp://host:8786).")
    ] = None,
    layout: LayoutOpt = "per-date",
    pattern: PatternOpt = None,
    crs: CrsOpt = None,
    resolution: ResolutionOpt = None,
    scale: ScaleOpt = None,
    offset: OffsetOpt = None,
    overwrite: Overwrite = False,
) -> None:
    """Classify every pixel of a raster time series → COG crop map, legend, optional layers.

    An interrupted run re-run with the same arguments resumes: only unfinished blocks are
    computed again.
    """
    from cropmeta.mapping.crop_map import map_region
    from cropmeta.mapping.options import MapOptions

    options = MapOptions(
        block=block,
        probabilities=probabilities,
        uncertainty=Uncertainty(uncertainty).value,
        min_probability=min_probability,
        aoi=aoi,
        fields=fields,
        workers=workers,
        scheduler=scheduler,
        overwrite=overwrite,
    )
    spec = raster_spec(tiles, layout, pattern, scale, offset, crs=crs, resolution=resolution)
    with progress_bar("map") as bar:
        result = map_region(model, spec, out, options, progress=bar)
    if result.reused:
        typer.echo(f"resumed: {result.reused} of {result.blocks} blocks were already done")
    for kind, path in result.outputs.items():
        typer.echo(f"{kind}: {path}")
    typer.echo(f"map written: {out}")


@one_line_errors
def preview(
    crop_map: Annotated[Path, typer.Argument(help="Crop-map GeoTIFF written by `cropmeta map`.")],
    out: Annotated[
        Path | None, typer.Option(help="PNG to write (default: next to the map).")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Render a crop map with its colours and class legend as a PNG."""
    from cropmeta.errors import require_exists
    from cropmeta.evaluate.plots import preview_map

    require_exists(crop_map, "crop map")
    png = preview_map(crop_map, out or crop_map.with_suffix(".png"), overwrite=overwrite)
    typer.echo(f"preview written: {png}")
