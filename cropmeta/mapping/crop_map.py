"""`cropmeta map`: classify every pixel of a raster time series into Cloud-Optimized GeoTIFFs.

The stages of a run:

1. **check** the model and rasters: an adapted model whose weights load (and match the SHA-256
   its config records), every band it needs, acquisitions inside its season, one CRS and grid
   for every date (the sources' own checks), and a Dask scheduler that answers, if one is
   given; nothing is written before these pass;
2. **plan** blocks of ``block`` × ``block`` pixels (:class:`~cropmeta.mapping.blocks.MapJob`);
3. **compute** the blocks not finished yet, here or on Dask (:mod:`.execute`), storing each
   one as it arrives (:mod:`.work`), so that a killed run re-run with the same arguments
   recomputes only the unfinished blocks (and only when no input file changed); a run that
   fails removes its work folder, so that bad input leaves nothing behind;
4. **export** the class map (and optional probability stack, uncertainty band and per-field
   GeoPackage) as COGs with their legend (:mod:`.cog`, :mod:`.legend`, :mod:`.fields`), each
   under a temporary name renamed when complete.

Each block is prepared by the same functions and recorded parameters that built the training
data, and a block's bytes do not depend on the block order or on which process computed it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rasterio.transform import array_bounds

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.labels import label_extent
from cropmeta.ingest.sources import RasterStack, is_remote, open_raster, pin_grid
from cropmeta.mapping import fields as polygons
from cropmeta.mapping.blocks import NODATA_CLASS, NODATA_SCALED, SCALE, MapJob
from cropmeta.mapping.cog import Layer, write_cog
from cropmeta.mapping.execute import run_blocks, scheduler_client
from cropmeta.mapping.legend import class_tags, rgba, write_legend, write_pam, write_qgis_style
from cropmeta.mapping.options import MapOptions, pam_path
from cropmeta.mapping.work import WorkStore, input_signatures, inputs_digest
from cropmeta.models.bundle import BundleConfig, load_bundle
from cropmeta.ownership import FILES_TAG, TAG, claim

Progress = Callable[[int, int], None]


@dataclass
class MapResult:
    """Where the outputs went and how much work this run did (``reused`` blocks were
    finished by an earlier, interrupted run)."""

    outputs: dict[str, Path]
    blocks: int
    computed: int
    reused: int
    classes: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.outputs["classes"]


def _check(model_dir: Path, cfg: BundleConfig, stack: RasterStack, where: Path) -> None:
    if cfg.kind != "adapted":
        raise InputError(model_dir, "model is not adapted to a region; run `cropmeta adapt` first")
    prep = cfg.preparation
    for band in prep.bands + ([prep.quality_band] if prep.quality_band else []):
        stack.band_index(band)
    g = prep.grid
    if not g.in_season(stack.doys).any():
        first, last = stack.dates[0], stack.dates[-1]
        raise InputError(
            where,
            f"no acquisition inside the model's season (DOY {g.start_doy}–{g.end_doy}); "
            f"the rasters span {first}..{last}",
        )
    if any(c.code > 254 or c.code <= NODATA_CLASS for c in cfg.classes):
        raise InputError(model_dir, "class codes must lie in 1..254 to fit a uint8 map")


def _identity(stack: RasterStack) -> dict:
    return {
        "dates": [d.isoformat() for d in stack.dates],
        "crs": stack.crs.to_wkt(),
        "transform": list(stack.transform)[:6],
        "bands": list(stack.band_names),
    }


def _layers(
    cfg: BundleConfig, options: MapOptions, sidecars: list[str]
) -> dict[str, tuple[str, Layer]]:
    """Raster outputs by kind: the work-store array each is read from, and how it looks. The
    class map's tags mark it as cropmeta's and name its ``sidecars`` (files without a marker
    of their own); the other layers are marked too (:mod:`cropmeta.ownership`)."""
    names = [c.name for c in cfg.classes]
    layer = {TAG: "crop-map-layer"}
    percent = layer | {"CROPMETA_VALUES": f"percent (scale 0.01), {NODATA_SCALED} = not classified"}
    layers = {
        "classes": (
            "classes",
            Layer(
                count=1,
                nodata=NODATA_CLASS,
                resampling="MODE",
                descriptions=["crop_class"],
                colormap={c.code: rgba(c.colour) for c in cfg.classes},
                tags=class_tags(cfg.classes, NODATA_CLASS)
                | {TAG: "crop-map", FILES_TAG: json.dumps(sidecars)},
            ),
        )
    }
    if options.probabilities:
        layers["probabilities"] = (
            "probabilities",
            Layer(
                count=len(names),
                nodata=NODATA_SCALED,
                resampling="AVERAGE",
                descriptions=[f"p_{n}" for n in names],
                scale=1 / SCALE,
                tags=percent | class_tags(cfg.classes, NODATA_CLASS),
            ),
        )
    if options.uncertainty != "none":
        layers["uncertainty"] = (
            "uncertainty",
            Layer(
                count=1,
                nodata=NODATA_SCALED,
                resampling="AVERAGE",
                descriptions=[f"uncertainty_{options.uncertainty}"],
                scale=1 / SCALE,
                tags=percent | {"CROPMETA_UNCERTAINTY": options.uncertainty},
            ),
        )
    return layers


def map_region(
    model_dir: str | Path,
    tiles: str | Path | RasterSpec,
    out: str | Path,
    options: MapOptions | None = None,
    *,
    progress: Progress | None = None,
    **overrides,
) -> MapResult:
    """Map ``tiles`` (a per-date folder, or a :class:`RasterSpec` of any layout preprocess
    reads) with the adapted model at ``model_dir`` into the COG ``out`` and its sidecars.

    ``options`` (or keyword overrides such as ``block=64, probabilities=True``) choose the
    outputs and where blocks run; see :class:`MapOptions`.
    """
    options = (options or MapOptions()).model_copy(update=overrides)
    model_dir, out = Path(model_dir), Path(out)
    spec = tiles if isinstance(tiles, RasterSpec) else RasterSpec(path=str(tiles))
    if not is_remote(spec.path):
        spec = spec.model_copy(update={"path": str(Path(spec.path).expanduser().absolute())})
    outputs = options.kinds(out)
    claim(
        out,
        "crop-map",
        inputs=[model_dir, spec.path, options.aoi, options.fields],
        overwrite=options.overwrite,
        companions={p: kind for p, kind in outputs.items() if p != out},
    )
    _, cfg = load_bundle(model_dir)  # the weights too: damaged ones fail before any work
    area = options.aoi or options.fields  # what a mosaic of STAC tiles needs to read
    stack = open_raster(spec, extent=None if area is None else label_extent(area))
    spec = pin_grid(spec, stack)  # the blocks' workers read the same grid
    _check(model_dir, cfg, stack, Path(spec.path))
    bounds = array_bounds(stack.height, stack.width, stack.transform)
    aoi = fields_gdf = None
    if options.aoi is not None:
        aoi = polygons.read_polygons(options.aoi, stack.crs, "AOI")
        polygons.check_overlap(aoi, bounds, options.aoi, "AOI")
    if options.fields is not None:
        fields_gdf = polygons.read_polygons(options.fields, stack.crs, "fields")
        polygons.check_overlap(fields_gdf, bounds, options.fields, "field")
    polygon_files = [Path(p).absolute() for p in (options.aoi, options.fields) if p is not None]
    inputs = input_signatures(model_dir, [*stack.source_files, *polygon_files])
    job = MapJob(
        model_dir=str(model_dir.absolute()),
        raster=spec.model_dump_json(),
        width=stack.width,
        height=stack.height,
        block=options.block,
        batch=options.batch,
        uncertainty=options.uncertainty,
        probabilities=options.probabilities,
        min_probability=options.min_probability,
        aoi=polygons.as_wkb(aoi) if aoi is not None else (),
        fields=tuple(enumerate(polygons.as_wkb(fields_gdf))) if fields_gdf is not None else (),
        inputs=inputs_digest(inputs),
    )
    # the work folder is made only now that the inputs are checked and the scheduler answered;
    # it goes when the outputs are complete or the run fails, and stays on Ctrl-C (see .work)
    with (
        scheduler_client(options.scheduler) as client,
        WorkStore(out, job, len(cfg.classes), _identity(stack), inputs) as store,
    ):
        total = job.n_blocks
        done = store.done()
        todo = [i for i in range(total) if i not in done]
        finished = len(done)
        if progress:
            progress(finished, total)

        def keep(result) -> None:
            nonlocal finished
            store.write(result)
            finished += 1
            if progress:
                progress(finished, total)

        run_blocks(job, todo, keep, workers=options.workers, client=client)
        paths = options.outputs(out)
        sidecars = sorted(p.name for p, kind in outputs.items() if kind is None)
        for kind, (array, layer) in _layers(cfg, options, sidecars).items():
            write_cog(
                paths[kind],
                layer,
                lambda win, array=array: store.read(array, win),
                width=stack.width,
                height=stack.height,
                crs=stack.crs,
                transform=stack.transform,
                scratch=store.root,
            )
        write_pam(cfg.classes, NODATA_CLASS, pam_path(out))
        write_qgis_style(cfg.classes, paths["qgis_style"])
        write_legend(cfg.classes, NODATA_CLASS, paths["legend_json"], paths["legend_csv"])
        if fields_gdf is not None:
            sums, counts = store.field_totals(len(fields_gdf), len(cfg.classes))
            table = polygons.field_predictions(
                fields_gdf, sums, counts, cfg.classes, options.uncertainty
            )
            polygons.write_fields(table, paths["fields"])
    return MapResult(paths, total, len(todo), total - len(todo), [c.name for c in cfg.classes])
