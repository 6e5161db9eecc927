"""``cropmeta`` command line: a thin skin over the Python API, one command per pipeline stage."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cropmeta.cli.progress import console, one_line_errors, progress_bar, setup_logging
from cropmeta.errors import InputError
from cropmeta.learners.names import ALGORITHMS

app = typer.Typer(
    help="Few-shot crop-type mapping: preprocess → meta-train → adapt → map.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
StatisticChoice = Enum("StatisticChoice", {"mean": "mean", "median": "median"}, type=str)
SamplingChoice = Enum("SamplingChoice", {"field": "field", "pixels": "pixels"}, type=str)
Algorithm = Enum("Algorithm", {k: k for k in ALGORITHMS}, type=str)  # every registered learner
Encoder = Enum("Encoder", {k: k for k in ("tempcnn", "lstm", "transformer", "ltae")}, type=str)
TableFormat = Enum("TableFormat", {"long": "long", "wide": "wide"}, type=str)
Layout = Enum(
    "Layout", {k: k for k in ("per-date", "band-date-pattern", "stac", "datacube")}, type=str
)
LayoutOpt = Annotated[Layout, typer.Option(help="How --tiles is organised.")]
PatternOpt = Annotated[
    str | None, typer.Option(help="band-date-pattern: regex with groups 'band' and 'date'.")
]
ScaleOpt = Annotated[float | None, typer.Option(help="Scale factor (overrides the files').")]
OffsetOpt = Annotated[float | None, typer.Option(help="Offset (overrides the files').")]
QualityOpt = Annotated[
    str | None, typer.Option(help="Quality/classification band [SCL when present].")
]
ValidRangeOpt = Annotated[
    tuple[float, float] | None,
    typer.Option(help="Mask pixels with a scaled value outside MIN MAX (valid-range rule)."),
]


def raster_spec(tiles: Path, layout, pattern, scale, offset, quality=None, valid_range=None):
    from cropmeta.catalog import RasterSpec

    return RasterSpec(
        path=str(tiles),
        layout=Layout(layout).value,
        pattern=pattern,
        scale=scale,
        offset=offset,
        quality_band=quality,
        valid_range=valid_range,
    )


Seed = Annotated[int, typer.Option(help="Random seed: same inputs + seed → same outputs.")]


@app.callback()
def _main() -> None:
    setup_logging()


@app.command()
@one_line_errors
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the world into (replaced).")],
    seed: Seed = 0,
    scale: Annotated[
        str, typer.Option(help="'demo', 'tiny' (for tests) or 'bench' (24 dates).")
    ] = "demo",
    tile_size: Annotated[int | None, typer.Option(help="Force every tile to N×N pixels.")] = None,
    region: Annotated[
        list[str] | None, typer.Option(help="Only these regions (repeatable).")
    ] = None,
) -> None:
    """Write the synthetic multi-region Sentinel-2 world: per-date GeoTIFFs + field GeoPackages."""
    from cropmeta.synth import make_world

    with progress_bar("synth") as bar:
        catalog = make_world(
            out,
            seed=seed,
            regions=region,
            tile_size=tile_size,
            scale=scale,
            progress=lambda _d, i, n: bar(i, n),
        )
    typer.echo(f"world written; catalog: {catalog}")


@app.command()
@one_line_errors
def preprocess(
    out: Annotated[Path, typer.Option(help="Region dataset to write (.zarr).")],
    tiles: Annotated[Path | None, typer.Option(help="Folder of per-date GeoTIFFs.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labelled fields (GeoPackage etc.).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Column holding the crop label.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Column holding a field id.")] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Region catalog YAML (with --region).")
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(help="Region name in the catalog; repeat it for several (--out: a folder)."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Processes for several regions.")] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address for several regions.")
    ] = None,
    table: Annotated[Path | None, typer.Option(help="A pre-extracted time-series table.")] = None,
    table_format: Annotated[
        TableFormat, typer.Option(help="long: a row per sample and date; wide: a line per sample.")
    ] = "long",
    start_date: Annotated[str | None, typer.Option(help="wide: date of the first value.")] = None,
    step_days: Annotated[int | None, typer.Option(help="wide: days between values.")] = None,
    band: Annotated[str, typer.Option(help="wide: name of the single band.")] = "ndvi",
    label_names: Annotated[
        str | None, typer.Option(help="Taxonomy tag of numeric labels (e.g. tiselac).")
    ] = None,
    grid_start: Annotated[
        int | None, typer.Option(help="First day of year of the grid [catalog season or 60].")
    ] = None,
    grid_end: Annotated[
        int | None, typer.Option(help="Last day of year of the grid [catalog season or 300].")
    ] = None,
    grid_step: Annotated[int | None, typer.Option(help="Grid step in days [10].")] = None,
    statistic: Annotated[StatisticChoice, typer.Option(help="Per-field statistic.")] = "mean",
    sampling: Annotated[
        SamplingChoice, typer.Option(help="One sample per field, or random pixels of each field.")
    ] = "field",
    pixels_per_field: Annotated[int, typer.Option(help="With --sampling pixels.")] = 10,
    buffer: Annotated[float, typer.Option(help="Shrink polygons by this many metres.")] = 0.0,
    min_pixels: Annotated[int, typer.Option(help="Drop polygons with fewer pixels.")] = 4,
    min_valid_fraction: Annotated[
        float, typer.Option(help="Drop samples with a smaller share of valid acquisitions.")
    ] = 0.2,
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer label file.")] = None,
    x_column: Annotated[str | None, typer.Option(help="CSV points: x/longitude column.")] = None,
    y_column: Annotated[str | None, typer.Option(help="CSV points: y/latitude column.")] = None,
    labels_crs: Annotated[str, typer.Option(help="CRS of CSV point coordinates.")] = "EPSG:4326",
    layout: LayoutOpt = "per-date",
    pattern: PatternOpt = None,
    scale: ScaleOpt = None,
    offset: OffsetOpt = None,
    quality_band: QualityOpt = None,
    mask_values: Annotated[
        str | None, typer.Option(help="Quality-band values to mask, e.g. '3,8,9,10' [SCL's].")
    ] = None,
    valid_range: ValidRangeOpt = None,
    seed: Seed = 0,
) -> None:
    """Tiles + labelled fields (or a catalog region, rasters or a pre-extracted table) → a
    region dataset of time series (Zarr)."""
    from cropmeta.ingest.prepare import TemporalGrid
    from cropmeta.ingest.preprocess import preprocess_catalog_region, preprocess_region

    given = {"start_doy": grid_start, "end_doy": grid_end, "step": grid_step}
    given = {k: v for k, v in given.items() if v is not None}
    grid = TemporalGrid(**given) if given else None
    options = dict(
        grid=grid,
        statistic=statistic,
        sampling=sampling,
        pixels_per_field=pixels_per_field,
        buffer=buffer,
        min_pixels=min_pixels,
        min_valid_fraction=min_valid_fraction,
        seed=seed,
    )
    if mask_values:
        options["invalid_classes"] = [int(v) for v in mask_values.split(",") if v.strip()]
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
            from cropmeta.catalog import TableSpec, load_taxonomy
            from cropmeta.ingest.tables import preprocess_table

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
                taxonomy=load_taxonomy(),
                grid=grid or TemporalGrid(),
                min_valid_fraction=min_valid_fraction,
            )
        elif tiles is None or labels is None or label_column is None:
            raise typer.BadParameter(
                "give --tiles, --labels and --label-column, or --table, or --catalog"
            )
        else:
            ds = preprocess_region(
                raster_spec(tiles, layout, pattern, scale, offset, quality_band, valid_range),
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


Schedule = Enum("Schedule", {k: k for k in ("cosine", "constant", "step")}, type=str)
Init = Enum("Init", {k: k for k in ("random", "pretrained")}, type=str)
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A learner setting KEY=VALUE (repeatable), e.g. head_init=prototypes, "
        "adapt_steps=50; `cropmeta learners` lists them.",
    ),
]


# simulated regions in meta-training (cropmeta.tasks.augment.TaskAugmentation)
ShiftDays = Annotated[
    int,
    typer.Option(
        min=0,
        max=183,
        help="Simulated regions: shift each meta-training task's phenology by up to ± this "
        "many days (0: off).",
    ),
]
Gain = Annotated[
    float,
    typer.Option(
        min=0, max=0.99, help="Simulated regions: scale each task's bands by 1 ± up to this."
    ),
]
Offset = Annotated[
    float,
    typer.Option(
        min=0,
        help="Simulated regions: move each task's bands by up to ± this (source std. devs).",
    ),
]


AugmentBaselines = Annotated[
    bool,
    typer.Option(
        help="Pre-train the transfer baselines' source classifier on simulated regions too "
        "(each sample its own draw)."
    ),
]
ValRegions = Annotated[
    list[str] | None,
    typer.Option(
        "--val-region",
        help="A source region held out whole for the meta-validation tasks (repeatable; "
        "default: a share of every source's samples).",
    ),
]


def _augment(shift_days: int, gain: float, offset: float, baselines: bool) -> dict:
    """MetaTrainConfig's simulated-region settings from the command line's options."""
    if baselines and not (shift_days or gain or offset):
        need = "needs --task-shift-days, --task-gain or --task-offset"
        raise typer.BadParameter(need, param_hint="--augment-baselines")
    augment = {"shift_days": shift_days, "gain": gain, "offset": offset}
    return {"augment": augment, "augment_baselines": baselines}


def _learner_settings(algorithms: list[str], pairs: list[str] | None) -> dict:
    from cropmeta.learners.registry import learner_settings

    try:
        return learner_settings(algorithms, pairs or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None


@app.command(context_settings={"allow_extra_args": True})
@one_line_errors
def meta_train(
    ctx: typer.Context,
    regions: Annotated[list[Path], typer.Option(help="Source region datasets (.zarr).")],
    out: Annotated[Path, typer.Option(help="Model folder to write.")],
    algorithm: Annotated[Algorithm, typer.Option(help="Meta-learner.")] = "maml",
    encoder: Annotated[Encoder, typer.Option(help="Temporal encoder.")] = "tempcnn",
    iterations: Annotated[int, typer.Option(help="Meta-training iterations.")] = 300,
    ways: Annotated[int, typer.Option(help="Classes per task (n-way).")] = 5,
    shots: Annotated[int, typer.Option(help="Support samples per class (k-shot).")] = 5,
    queries: Annotated[int, typer.Option(help="Query samples per class.")] = 10,
    meta_batch: Annotated[int, typer.Option(help="Tasks per meta-update.")] = 4,
    schedule: Annotated[Schedule, typer.Option(help="Meta learning-rate schedule.")] = "cosine",
    warmup: Annotated[
        int, typer.Option(min=0, help="Iterations of linear learning-rate warm-up.")
    ] = 0,
    val_every: Annotated[
        int, typer.Option(min=1, help="Score the held-out validation tasks every N iterations.")
    ] = 50,
    patience: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after N validations without improvement (default: never)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:N, or auto (cuda when available).")
    ] = "cpu",
    checkpoint_every: Annotated[
        int,
        typer.Option(min=0, help="Checkpoint every N iterations and at the end (0: never)."),
    ] = 50,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoint folder [OUT.checkpoints].")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue from the checkpoint (same data, settings and seed), if there is one."
        ),
    ] = False,
    init: Annotated[
        Init,
        typer.Option(
            help="Starting encoder: random, or pre-trained on the sources with cross-entropy "
            "(the transfer baselines' classifier; Meta-Baseline)."
        ),
    ] = "random",
    task_shift_days: ShiftDays = 0,
    task_gain: Gain = 0.0,
    task_offset: Offset = 0.0,
    augment_baselines: AugmentBaselines = False,
    val_region: ValRegions = None,
    settings: Settings = None,
    seed: Seed = 0,
) -> None:
    """Meta-train an encoder over n-way k-shot tasks drawn across source regions.

    Several processes share each meta-batch when launched with
    `torchrun --nproc_per_node N -m cropmeta meta-train ...`; only rank 0 writes.
    """
    from cropmeta.learners.meta_train import MetaTrainConfig, RunOptions, meta_train

    paths = list(regions) + [Path(a) for a in ctx.args]
    cfg = MetaTrainConfig(
        algorithm=Algorithm(algorithm).value,
        learner=_learner_settings([Algorithm(algorithm).value], settings),
        encoder={"name": Encoder(encoder).value},
        iterations=iterations,
        n_way=ways,
        k_shot=shots,
        q_query=queries,
        meta_batch=meta_batch,
        schedule=Schedule(schedule).value,
        warmup=warmup,
        val_every=val_every,
        patience=patience,
        init=Init(init).value,
        **_augment(task_shift_days, task_gain, task_offset, augment_baselines),
        val_regions=val_region or [],
    )
    run = RunOptions(
        device=device,
        checkpoint_every=checkpoint_every or None,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    with progress_bar(f"meta-train {Algorithm(algorithm).value}") as bar:
        meta_train(paths, out, cfg, seed=seed, progress=bar, run=run)
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: one message, from the writer
        typer.echo(f"model written: {out}")


@app.command()
@one_line_errors
def adapt(
    model: Annotated[Path, typer.Option(help="Meta-trained model folder.")],
    region: Annotated[Path, typer.Option(help="Target region dataset (.zarr).")],
    out: Annotated[Path, typer.Option(help="Adapted model folder to write.")],
    shots: Annotated[
        int | None,
        typer.Option(
            help="Labelled samples per class; the rest evaluate. Without it: adapt on all labels."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="An adaptation setting KEY=VALUE (repeatable): adapt_steps, adapt_lr, "
            "fine_tune_steps, fine_tune_lr (as the learner has them).",
        ),
    ] = None,
    seed: Seed = 0,
) -> None:
    """Adapt to a new region from K labelled fields per class; compare with baselines."""
    from cropmeta.adapt.adapt import adapt_region
    from cropmeta.evaluate.report import metrics_table
    from cropmeta.learners.registry import adaptation_settings
    from cropmeta.models.bundle import load_config

    try:
        chosen = adaptation_settings(load_config(model).learner["algorithm"], settings or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None
    result = adapt_region(model, region, out, shots=shots, seed=seed, settings=chosen)
    if as_json:
        typer.echo(result.to_json())
    else:
        if result.metrics:
            console.print(metrics_table(result))
        typer.echo(f"adapted model written: {out}")


@app.command("learners")
def learners_() -> None:
    """List the meta-learners' settings that `--set` changes, with their defaults."""
    from rich.console import Console
    from rich.table import Table

    from cropmeta.learners.registry import describe_settings

    table = Table("setting", "default (learners)", "what it does")
    for row in describe_settings():
        table.add_row(*row)
    Console().print(table)  # a listing: standard output


@app.command("suggest-labels")
@one_line_errors
def suggest_labels(
    model: Annotated[Path, typer.Option(help="Meta-trained model folder (not an adapted one).")],
    fields: Annotated[Path, typer.Option(help="The region's field polygons (no labels needed).")],
    tiles: Annotated[Path, typer.Option(help="The region's rasters (see --layout).")],
    budget: Annotated[int, typer.Option(help="How many fields to propose for labelling.")],
    out: Annotated[Path, typer.Option(help="GeoPackage of the proposed fields to write.")],
    method: Annotated[
        str,
        typer.Option(
            help="'kcenter' (farthest-first coverage; nested priority) or 'kmeans' (the field "
            "nearest each k-means centre, largest cluster first)."
        ),
    ] = "kcenter",
    layout: LayoutOpt = "per-date",
    pattern: PatternOpt = None,
    scale: ScaleOpt = None,
    offset: OffsetOpt = None,
    seed: Seed = 0,
) -> None:
    """Propose which fields to label first: the meta-model embeds every field's series, and
    BUDGET fields that cover that embedding space are written in priority order."""
    from cropmeta.adapt.suggest import suggest_labels as suggest

    spec = raster_spec(tiles, layout, pattern, scale, offset)
    with progress_bar("suggest-labels") as bar:
        chosen = suggest(model, fields, spec, budget, out, seed=seed, method=method, progress=bar)
    typer.echo(f"{len(chosen)} fields to label first ({method}), priority 1..{len(chosen)}: {out}")


@app.command("map")
@one_line_errors
def map_(
    model: Annotated[Path, typer.Option(help="Adapted model folder.")],
    tiles: Annotated[Path, typer.Option(help="Rasters to classify (see --layout).")],
    out: Annotated[Path, typer.Option(help="Crop-map GeoTIFF (COG) to write.")],
    block: Annotated[int, typer.Option(help="Block size in pixels (the unit of work).")] = 256,
    probabilities: Annotated[
        bool, typer.Option(help="Also write OUT.probabilities.tif: one band per class, percent.")
    ] = False,
    uncertainty: Annotated[
        str,
        typer.Option(
            help="Also write an uncertainty band: 'entropy' or 'margin' (OUT.<kind>.tif)."
        ),
    ] = "none",
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
        typer.Option(help="Local Dask worker processes (default: all cores; 1 = no Dask)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a running Dask scheduler (e.g. tcp://host:8786).")
    ] = None,
    layout: LayoutOpt = "per-date",
    pattern: PatternOpt = None,
    scale: ScaleOpt = None,
    offset: OffsetOpt = None,
    seed: Seed = 0,
) -> None:
    """Classify every pixel of a raster time series → COG crop map, legend, optional layers.

    An interrupted run re-run with the same arguments resumes: only unfinished blocks are
    computed again.
    """
    from pydantic import ValidationError

    from cropmeta.mapping.crop_map import map_region
    from cropmeta.mapping.options import MapOptions

    try:
        options = MapOptions(
            block=block,
            probabilities=probabilities,
            uncertainty=uncertainty,
            aoi=aoi,
            fields=fields,
            workers=workers,
            scheduler=scheduler,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(str(err["loc"][0]), err["msg"]) from None
    spec = raster_spec(tiles, layout, pattern, scale, offset)
    with progress_bar("map") as bar:
        result = map_region(model, spec, out, options, progress=bar)
    if result.reused:
        typer.echo(f"resumed: {result.reused} of {result.blocks} blocks were already done")
    for kind, path in result.outputs.items():
        typer.echo(f"{kind}: {path}")
    typer.echo(f"map written: {out}")


@app.command()
@one_line_errors
def evaluate(
    catalog: Annotated[Path, typer.Option(help="Catalog YAML naming the regions and the split.")],
    out: Annotated[
        Path,
        typer.Option(help="Folder for report.md, report.html, results.json, figures/, models/."),
    ],
    learner: Annotated[
        list[Algorithm] | None,
        typer.Option(help="Meta-learner to compare (repeatable; default: maml, protonet)."),
    ] = None,
    shots: Annotated[
        list[int] | None,
        typer.Option(help="Labelled samples per class K (repeatable; default: 1 2 5 10 20)."),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Support/query draws per K.")] = 5,
    region: Annotated[
        list[str] | None, typer.Option(help="Catalog regions to use (repeatable; default: all).")
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(help="Held-out regions (repeatable; default: the catalog's targets)."),
    ] = None,
    loro: Annotated[
        bool, typer.Option(help="Leave-one-region-out over the regions instead of the split.")
    ] = False,
    encoder: Annotated[Encoder, typer.Option(help="Temporal encoder.")] = "tempcnn",
    iterations: Annotated[int, typer.Option(help="Meta-training iterations.")] = 300,
    task_ways: Annotated[int, typer.Option(help="Meta-training classes per task.")] = 5,
    task_shots: Annotated[int, typer.Option(help="Meta-training support per class.")] = 5,
    task_queries: Annotated[int, typer.Option(help="Meta-training queries per class.")] = 10,
    task_shift_days: ShiftDays = 0,
    task_gain: Gain = 0.0,
    task_offset: Offset = 0.0,
    augment_baselines: AugmentBaselines = False,
    val_region: ValRegions = None,
    settings: Settings = None,
    seed: Seed = 0,
) -> None:
    """Which learner, with how many labels, how sure: few-shot evaluation on held-out regions.

    Meta-trains every learner on the sources of each fold, adapts it and every baseline to the
    held-out region on the same K-shot draws, and writes a Markdown report with plots.
    """
    from cropmeta.evaluate.evaluation import evaluate_catalog
    from cropmeta.evaluate.protocol import EvaluationConfig
    from cropmeta.learners.meta_train import MetaTrainConfig
    from cropmeta.models.encoders import EncoderConfig

    defaults = EvaluationConfig()
    learners = [a.value for a in learner] if learner else defaults.learners
    cfg = EvaluationConfig(
        learners=learners,
        shots=shots or defaults.shots,
        seeds=seeds,
        regions=region or None,
        targets=target or None,
        loro=loro,
        meta=MetaTrainConfig(
            learner=_learner_settings(learners, settings),
            encoder=EncoderConfig(name=encoder.value),
            iterations=iterations,
            n_way=task_ways,
            k_shot=task_shots,
            q_query=task_queries,
            **_augment(task_shift_days, task_gain, task_offset, augment_baselines),
            val_regions=val_region or [],
        ),
    )
    with progress_bar("evaluate") as bar:
        report = evaluate_catalog(catalog, out, cfg, seed=seed, progress=lambda _, d, t: bar(d, t))
    typer.echo(f"report written: {report}")


@app.command()
@one_line_errors
def demo(
    out: Annotated[
        Path, typer.Option(help="Folder for the world, datasets, models and map.")
    ] = Path("demo-out"),
    seed: Seed = 0,
    scale: Annotated[str, typer.Option(help="'demo' or 'tiny'.")] = "demo",
    iterations: Annotated[int, typer.Option(help="Meta-training iterations.")] = 300,
    shots: Annotated[int, typer.Option(help="Labelled fields per class in the target.")] = 5,
) -> None:
    """The whole chain on the synthetic world: synth → preprocess → meta-train → adapt → map."""
    from cropmeta.demo import run_demo

    summary = run_demo(out, seed=seed, scale=scale, iterations=iterations, shots=shots)
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))


@app.command()
@one_line_errors
def preview(
    crop_map: Annotated[Path, typer.Argument(help="Crop-map GeoTIFF written by `cropmeta map`.")],
    out: Annotated[
        Path | None, typer.Option(help="PNG to write (default: next to the map).")
    ] = None,
    seed: Seed = 0,
) -> None:
    """Render a crop map with its colours and class legend as a PNG."""
    from cropmeta.errors import require_exists
    from cropmeta.evaluate.plots import preview_map

    require_exists(crop_map, "crop map")
    typer.echo(f"preview written: {preview_map(crop_map, out or crop_map.with_suffix('.png'))}")
