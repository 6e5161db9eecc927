"""Ingest commands: the synthetic world, and region datasets from tiles and labels."""

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
    QualityOpt,
    ResolutionOpt,
    SamplingChoice,
    ScaleOpt,
    Seed,
    StatisticChoice,
    TableFormat,
    UserTaxonomyOpt,
    ValidRangeOpt,
    WorldLayout,
    WorldScale,
    count,
    raster_spec,
    real,
    region_help,
)
from cropmeta.cli.progress import one_line_errors
from cropmeta.progress import progress_bar


def integer_list(value: str | None) -> str | None:
    """Option callback: a comma-separated list of integers, e.g. ``3,8,9,10``."""
    if value is not None:
        for item in value.split(","):
            if item.strip() and not item.strip().lstrip("-").isdigit():
                raise typer.BadParameter(f"{item.strip()!r} is not an integer (e.g. '3,8,9,10')")
    return value


def check_unlabelled_options(
    tiles: Path | None,
    fields: Path | None,
    sample_pixels: int | None,
    label_column: str | None,
    drop_unknown: bool,
    catalog: Path | None,
    table: Path | None,
) -> None:
    """Refuse, with one line naming the option, what ``preprocess --unlabelled`` cannot honour.

    Label options are refused rather than ignored: a user who names a label column most likely
    meant a labelled dataset, and would otherwise find out only when meta-training or
    evaluation refuses the unlabelled one.
    """
    if label_column is not None or drop_unknown:
        hint = "--label-column" if label_column is not None else "--drop-unknown"
        why = "--unlabelled reads no labels (a label column in the fields file is not read)"
        raise typer.BadParameter(f"{why}; leave it out, or leave out --unlabelled", param_hint=hint)
    if catalog is not None or table is not None:
        hint = "--catalog" if catalog is not None else "--table"
        raise typer.BadParameter(
            "--unlabelled takes --tiles with --fields or --sample-pixels", param_hint=hint
        )
    if tiles is None or (fields is None) == (sample_pixels is None):
        problem = "give --tiles and one of --fields (fields or points) and --sample-pixels N"
        raise typer.BadParameter(problem, param_hint="--unlabelled")


@one_line_errors
def synth(
    out: Annotated[
        Path,
        typer.Option(help="Folder to write the world into (a world written before is replaced)."),
    ],
    seed: Seed = 0,
    scale: Annotated[
        WorldScale, typer.Option(help="demo, tiny (for tests) or bench (24 dates).")
    ] = "demo",
    tile_size: Annotated[
        int | None, count("Force every tile to N×N pixels.", lo=16, hi=16384)
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(help=region_help("Only this region (repeatable)", "the world", False)),
    ] = None,
    overwrite: Overwrite = False,
    layout: Annotated[
        WorldLayout,
        typer.Option(
            "--as",
            help="per-date: the tiles only; earth-search or planetary-computer: also each "
            "region as that provider's STAC items over COGs, in <out>/<region>/stac-<provider>.",
        ),
    ] = "per-date",
) -> None:
    """Write the synthetic multi-region Sentinel-2 world: per-date GeoTIFFs + field GeoPackages."""
    from cropmeta.synth import make_world

    with progress_bar("synth") as bar:
        catalog = make_world(
            out,
            seed=seed,
            regions=region,
            tile_size=tile_size,
            scale=WorldScale(scale).value,
            progress=lambda _d, i, n: bar(i, n),
            overwrite=overwrite,
        )
    typer.echo(f"world written; catalog: {catalog}")
    provider = WorldLayout(layout).value
    if provider != "per-date":
        from cropmeta.catalog import load_catalog
        from cropmeta.synth.providers import write_provider_items

        for entry in load_catalog(catalog).regions:
            with progress_bar(f"{entry.name} as {provider}") as bar:
                items = write_provider_items(
                    catalog,
                    entry.name,
                    Path(out) / entry.name / f"stac-{provider}",
                    provider,
                    progress=lambda _d, i, n: bar(i, n),
                )
            typer.echo(f"{entry.name} as {provider}: {items}")


@one_line_errors
def preprocess(
    out: Annotated[Path, typer.Option(help="Region dataset to write (.zarr).")],
    tiles: Annotated[
        Path | None,
        typer.Option(
            help="The region's rasters (see --layout): a folder, or STAC items (file or URL)."
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            "--fields",
            help="Labelled fields (GeoPackage etc.); with --unlabelled, fields or points whose "
            "labels, if any, are not read.",
        ),
    ] = None,
    label_column: Annotated[str | None, typer.Option(help="Column holding the crop label.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Column holding a field id.")] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Region catalog YAML (with --region).")
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(
            help=region_help(
                "The region to build (repeatable; --out is then a folder)",
                "--catalog",
                dataset=False,
            )  # fmt: skip
        ),
    ] = None,
    workers: Annotated[int | None, count("Processes for several regions.", hi=1024)] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address for several regions.")
    ] = None,
    table: Annotated[Path | None, typer.Option(help="A pre-extracted time-series table.")] = None,
    table_format: Annotated[
        TableFormat, typer.Option(help="long: a row per sample and date; wide: a line per sample.")
    ] = "long",
    start_date: Annotated[str | None, typer.Option(help="wide: date of the first value.")] = None,
    step_days: Annotated[int | None, count("wide: days between values.", hi=366)] = None,
    band: Annotated[str, typer.Option(help="wide: name of the single band.")] = "ndvi",
    label_names: Annotated[
        str | None, typer.Option(help="Taxonomy tag of numeric labels (e.g. tiselac).")
    ] = None,
    grid_start: Annotated[
        int | None,
        count("First day of year of the grid (default: the catalog's season, else 60).", hi=366),
    ] = None,
    grid_end: Annotated[
        int | None,
        count(
            "Last day of year of the grid (default: the catalog's season, else 300); below the "
            "start, the season crosses New Year.",
            hi=366,
        ),
    ] = None,
    grid_step: Annotated[int | None, count("Grid step in days (default: 10).", hi=120)] = None,
    statistic: Annotated[StatisticChoice, typer.Option(help="Per-field statistic.")] = "mean",
    sampling: Annotated[
        SamplingChoice, typer.Option(help="One sample per field, or random pixels of each field.")
    ] = "field",
    pixels_per_field: Annotated[int, count("With --sampling pixels.", hi=100_000)] = 10,
    buffer: Annotated[float, real("Shrink polygons by this many metres.", 0, 100_000)] = 0.0,
    min_pixels: Annotated[int, count("Drop polygons with fewer pixels.", hi=MANY)] = 4,
    min_valid_fraction: Annotated[
        float, real("Drop samples with a smaller share of valid acquisitions.", 0, 1)
    ] = 0.2,
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer label file.")] = None,
    x_column: Annotated[str | None, typer.Option(help="CSV points: x/longitude column.")] = None,
    y_column: Annotated[str | None, typer.Option(help="CSV points: y/latitude column.")] = None,
    labels_crs: Annotated[str, typer.Option(help="CRS of CSV point coordinates.")] = "EPSG:4326",
    layout: LayoutOpt = "per-date",
    pattern: PatternOpt = None,
    crs: CrsOpt = None,
    resolution: ResolutionOpt = None,
    scale: ScaleOpt = None,
    offset: OffsetOpt = None,
    quality_band: QualityOpt = None,
    mask_values: Annotated[
        str | None,
        typer.Option(
            help="Quality-band values to mask, e.g. '3,8,9,10' (default: SCL's no-data, "
            "saturated, shadow, cloud, cirrus and snow classes).",
            callback=integer_list,
        ),
    ] = None,
    valid_range: ValidRangeOpt = None,
    drop_unknown: Annotated[
        bool,
        typer.Option(
            help="Drop labels the taxonomy does not know (listed with their counts in the "
            "summary) instead of refusing the label file."
        ),
    ] = False,
    taxonomy: UserTaxonomyOpt = None,
    non_crop_pixels: Annotated[
        int,
        count(
            "Also N random pixels at least --non-crop-margin from every polygon of the label "
            "file, as class non_crop: the model learns to leave roads, buildings and woods "
            "out of the crops (the label file should hold every field of its area).",
            lo=0,
            hi=1_000_000,
        ),
    ] = 0,
    non_crop_margin: Annotated[
        float, real("Metres between a non-crop pixel and the nearest field.", 0, 10_000)
    ] = 20.0,
    unlabelled: Annotated[
        bool,
        typer.Option(
            "--unlabelled",
            help="Tiles + fields without labels (or --sample-pixels) → an unlabelled dataset, "
            "prepared like a labelled one, for adapt --unlabelled.",
        ),
    ] = False,
    sample_pixels: Annotated[
        int | None,
        count(
            "With --unlabelled and no fields: N random pixels of the tiles' valid area "
            "(seeded by --seed).",
            hi=1_000_000,
        ),
    ] = None,
    overwrite: Overwrite = False,
    seed: Seed = 0,
) -> None:
    """Tiles + labelled fields (or a catalog region, rasters or a pre-extracted table) → a
    region dataset of time series (Zarr); with --unlabelled, tiles + fields without labels
    (or random pixels) → an unlabelled one."""
    from cropmeta.ingest.catalog_regions import preprocess_catalog_region
    from cropmeta.ingest.options import PreprocessOptions
    from cropmeta.ingest.prepare import TemporalGrid
    from cropmeta.ingest.preprocess import preprocess_region, preprocess_unlabelled

    if region and catalog is None:  # the region is what this command builds
        raise typer.BadParameter("names a catalog region: give --catalog", param_hint="--region")
    given = {"start_doy": grid_start, "end_doy": grid_end, "step": grid_step}
    given = {k: v for k, v in given.items() if v is not None}
    grid = TemporalGrid(**given) if given else None
    if non_crop_pixels and (unlabelled or table is not None):
        raise typer.BadParameter(
            "non-crop pixels are labelled samples from tiles and a label file",
            param_hint="--non-crop-pixels",
        )
    preprocessing = PreprocessOptions(
        grid=grid,
        invalid_classes=[int(v) for v in mask_values.split(",") if v.strip()] if mask_values
        else None,
        min_valid_fraction=min_valid_fraction,
        statistic=StatisticChoice(statistic).value,
        sampling=SamplingChoice(sampling).value,
        pixels_per_field=pixels_per_field,
        buffer=buffer,
        min_pixels=min_pixels,
        drop_unknown=drop_unknown,
        non_crop_pixels=non_crop_pixels,
        non_crop_margin=non_crop_margin,
        seed=seed,
    )  # fmt: skip
    options = {"options": preprocessing, "overwrite": overwrite}
    if taxonomy is not None and not unlabelled:
        options["user_taxonomy"] = str(taxonomy)
    rasters = tiles and raster_spec(
        tiles, layout, pattern, scale, offset, quality_band, valid_range, crs, resolution
    )
    if unlabelled:
        check_unlabelled_options(
            tiles, labels, sample_pixels, label_column, drop_unknown, catalog, table
        )
        assert tiles is not None
        with progress_bar("preprocess unlabelled") as bar:
            ds = preprocess_unlabelled(
                rasters,
                labels,
                out,
                sample_pixels=sample_pixels,
                id_column=id_column,
                layer=layer,
                x_column=x_column,
                y_column=y_column,
                labels_crs=labels_crs,
                progress=bar,
                **options,
            )
        samples = ds.sizes["sample"]
        typer.echo(f"{out}: {samples} unlabelled samples; {ds.attrs['summary']}")
        return
    if sample_pixels is not None:
        raise typer.BadParameter(
            "random pixels are unlabelled: add --unlabelled", param_hint="--sample-pixels"
        )
    if catalog is not None and region and len(region) > 1:
        from cropmeta.ingest.parallel import preprocess_regions

        with progress_bar("preprocess regions") as bar:
            paths = preprocess_regions(
                catalog, region, out, workers=workers, scheduler=scheduler, progress=bar, **options
            )
        typer.echo("\n".join(f"{name}: {path}" for name, path in paths.items()))
        return
    with progress_bar("preprocess") as bar:
        if catalog is not None:
            if not region:
                raise typer.BadParameter("--catalog needs --region")
            ds = preprocess_catalog_region(catalog, region[0], out, progress=bar, **options)
        elif table is not None:
            from cropmeta.catalog import TableSpec
            from cropmeta.ingest.tables import preprocess_table
            from cropmeta.taxonomy import load_taxonomy

            spec = TableSpec(
                format=TableFormat(table_format).value,
                path=str(table),
                band=band,
                label_column=label_column or "label",
                sample_column=id_column or "sample_id",
                x_column=x_column,
                y_column=y_column,
                crs=labels_crs,
                start_date=start_date,
                step_days=step_days,
                scale=scale or 1.0,
                offset=offset or 0.0,
                label_names=label_names,
            )
            ds = preprocess_table(
                spec,
                out,
                region=table.stem,
                taxonomy=load_taxonomy(extra=taxonomy),
                grid=grid or TemporalGrid(),
                min_valid_fraction=preprocessing.min_valid_fraction,
                overwrite=overwrite,
                drop_unknown=preprocessing.drop_unknown,
            )
        elif tiles is None or labels is None or label_column is None:
            raise typer.BadParameter(
                "give --tiles, --labels and --label-column, or --table, or --catalog"
            )
        else:
            ds = preprocess_region(
                rasters,
                labels,
                label_column,
                out,
                id_column=id_column,
                layer=layer,
                x_column=x_column,
                y_column=y_column,
                labels_crs=labels_crs,
                progress=bar,
                **options,
            )
    typer.echo(f"{out}: {ds.sizes['sample']} samples; {ds.attrs['summary']}")


@one_line_errors
def taxonomy_(
    taxonomy: UserTaxonomyOpt = None,
    catalog: Annotated[
        Path | None,
        typer.Option(help="A catalog whose taxonomy is the base (default: the packaged one)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the taxonomy as JSON.")] = False,
) -> None:
    """List the crop classes labels may name: code (the map's pixel value), name, colour and
    the local names that mean it, with your --taxonomy merged in."""
    from rich.console import Console
    from rich.table import Table

    from cropmeta.catalog import load_catalog
    from cropmeta.taxonomy import load_taxonomy

    if catalog is not None:
        merged = load_catalog(catalog).load_taxonomy(taxonomy)
    else:
        merged = load_taxonomy(extra=taxonomy)
    if as_json:
        typer.echo(merged.model_dump_json(indent=2))
        return
    table = Table("code", "name", "colour", "local names", title=merged.name)
    for c in merged.classes:
        names = ", ".join(f"{tag}: {name}" for tag, name in c.names.items())
        table.add_row(str(c.code), c.name, c.colour, names)
    Console().print(table)  # a listing: standard output
