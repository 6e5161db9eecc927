"""One block of pixels → class codes, probabilities, uncertainty and per-field sums.

A block is the unit of work of `cropmeta map`: any process (this one, or a Dask worker on
another machine that sees the same paths) computes block ``i`` of a :class:`MapJob` from the
job alone. The pixels are read, masked, regularised and standardised by the functions and the
recorded parameters that prepared the training data (:mod:`cropmeta.ingest.prepare`), then
classified with one intra-op thread, so a block's bytes never depend on where it ran.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import shapely
import torch
from rasterio.features import geometry_mask, rasterize
from rasterio.windows import Window, bounds, transform

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.prepare import regularise
from cropmeta.ingest.sources import open_raster
from cropmeta.models.bundle import load_bundle

NODATA_CLASS = 0
NODATA_SCALED = 255  # probability and uncertainty bands: 0..100 (percent), 255 = nodata
SCALE = 100


@dataclass(frozen=True)
class MapJob:
    """What every block needs: small, hashable and picklable, so it travels to Dask workers.

    Geometries are WKB in the raster's CRS; ``fields`` pairs each field's export id with its
    polygon. ``inputs`` is a digest of the model's and the input files' content
    (:func:`cropmeta.mapping.work.input_signatures`): a process keeps the model and opened
    rasters of recent jobs (:func:`context`), and a job over changed files must not reuse them.
    """

    model_dir: str
    raster: str  # RasterSpec as JSON
    width: int
    height: int
    block: int
    batch: int
    uncertainty: str = "none"
    probabilities: bool = False
    min_probability: float = 0.0
    aoi: tuple[bytes, ...] = ()
    fields: tuple[tuple[int, bytes], ...] = ()
    inputs: str = ""

    @property
    def n_blocks(self) -> int:
        return -(-self.width // self.block) * -(-self.height // self.block)

    def window(self, index: int) -> Window:
        """Block ``index``, counted row by row from the top-left corner."""
        row, col = divmod(index, -(-self.width // self.block))
        r0, c0 = row * self.block, col * self.block
        return Window(c0, r0, min(self.block, self.width - c0), min(self.block, self.height - r0))


@dataclass
class BlockResult:
    """A block's outputs: (rows, cols) uint8 bands, a (class, rows, cols) probability stack,
    and per-field sums of class probabilities over the field's classified pixels."""

    index: int
    classes: np.ndarray
    probabilities: np.ndarray | None
    uncertainty: np.ndarray | None
    field_ids: np.ndarray
    field_sums: np.ndarray
    field_counts: np.ndarray


@dataclass
class _Context:
    """Per-process state of a job: the model, the opened rasters and the geometry indexes."""

    model: torch.nn.Module
    normaliser: object
    prep: object
    stack: object
    dates: list[int]  # in-season acquisitions: the only ones regularise uses
    doy: torch.Tensor
    codes: np.ndarray
    aoi: list
    field_ids: np.ndarray
    field_geoms: np.ndarray
    field_tree: shapely.STRtree | None


@functools.lru_cache(maxsize=2)
def context(job: MapJob) -> _Context:
    model, cfg = load_bundle(job.model_dir)
    model.eval()
    prep = cfg.preparation
    stack = open_raster(RasterSpec.model_validate_json(job.raster))
    ids = np.array([i for i, _ in job.fields], dtype=np.int64)
    geoms = np.array([shapely.from_wkb(g) for _, g in job.fields], dtype=object)
    return _Context(
        model=model,
        normaliser=cfg.normaliser,
        prep=prep,
        stack=stack,
        dates=[int(i) for i in np.flatnonzero(prep.grid.in_season(stack.doys))],
        doy=torch.from_numpy(prep.grid.doys()).long(),
        codes=np.array([c.code for c in cfg.classes], dtype=np.uint8),
        aoi=[shapely.from_wkb(g) for g in job.aoi],
        field_ids=ids,
        field_geoms=geoms,
        field_tree=shapely.STRtree(geoms) if len(geoms) else None,
    )


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch with one intra-op thread (parallelism comes from blocks), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def predict_proba(ctx: _Context, x: torch.Tensor, batch: int) -> np.ndarray:
    if not len(x):
        return np.zeros((0, len(ctx.codes)), np.float32)
    with torch.inference_mode():
        parts = [ctx.model(x[i : i + batch], ctx.doy).softmax(-1) for i in range(0, len(x), batch)]
    return torch.cat(parts).numpy()


def uncertainty_of(p: np.ndarray, kind: str) -> np.ndarray:
    """Per-pixel uncertainty in [0, 1] from probabilities (pixel, class); 1 = least sure.

    ``entropy``: Shannon entropy divided by its maximum, log(classes); ``margin``: one minus
    the gap between the two most probable classes.
    """
    if p.shape[1] < 2:
        return np.zeros(len(p), np.float32)
    if kind == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return (h / np.log(p.shape[1])).astype(np.float32)
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return (1.0 - (top2[:, 1] - top2[:, 0])).astype(np.float32)


def _scaled(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * SCALE), 0, SCALE).astype(np.uint8)


def _field_sums(
    ctx: _Context, win: Window, ok: np.ndarray, p: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_classes = len(ctx.codes)
    empty = (np.zeros(0, np.int64), np.zeros((0, n_classes)), np.zeros(0, np.int64))
    if ctx.field_tree is None:
        return empty
    hits = np.sort(ctx.field_tree.query(shapely.box(*bounds(win, ctx.stack.transform))))
    if not len(hits):
        return empty
    burn = rasterize(
        zip(ctx.field_geoms[hits], ctx.field_ids[hits], strict=True),
        out_shape=shape,
        transform=transform(win, ctx.stack.transform),
        fill=-1,
        dtype="int64",
    ).ravel()[ok]
    ids, inverse = np.unique(burn, return_inverse=True)
    keep = ids >= 0
    sums = np.stack(
        [np.bincount(inverse, weights=p[:, c], minlength=len(ids)) for c in range(n_classes)], 1
    )
    counts = np.bincount(inverse, minlength=len(ids))
    return ids[keep], sums[keep], counts[keep]


def prepare_block(job: MapJob, index: int) -> tuple[torch.Tensor, np.ndarray]:
    """Block ``index`` as the model's input: standardised series (pixel, step, band) of the
    pixels to classify, and the mask (rows × cols, flattened) of which pixels those are —
    inside the AOI and with enough valid observations."""
    ctx = context(job)
    win = job.window(index)
    shape = (int(win.height), int(win.width))
    ok = np.ones(shape[0] * shape[1], dtype=bool)
    if ctx.aoi:
        ok &= geometry_mask(
            ctx.aoi, shape, transform(win, ctx.stack.transform), invert=True
        ).ravel()
    if not ok.any():
        return torch.zeros(0), ok
    obs = np.stack([ctx.stack.read(t, ctx.prep, win) for t in ctx.dates])
    series, _ = regularise(obs.reshape(*obs.shape[:2], -1), ctx.stack.doys[ctx.dates], ctx.prep)
    ok &= ~np.isnan(series).any(axis=(0, 1))
    x = ctx.normaliser(np.compress(ok, series, axis=2), band_axis=1, inplace=True)
    return torch.from_numpy(x).permute(2, 0, 1), ok  # (pixel, step, band)


def compute_block(job: MapJob, index: int) -> BlockResult:
    """Classify block ``index`` of ``job``; pixels outside the AOI or without enough valid
    observations get nodata in every band, pixels below ``job.min_probability`` in the class
    band.

    Bad input found here (a damaged raster, weights changed since the run was checked) raises
    an :class:`InputError` without the errors it was raised from: rasterio's GDAL errors do not
    survive pickling, and Dask sends a worker's exception back pickled (whole chain included),
    so a chained one would reach the caller as a bare ``Exception`` instead of the one line
    naming the file.
    """
    try:
        return _classify(job, index)
    except InputError as exc:
        unchained = InputError(exc.path, exc.problem)
    raise unchained  # outside the handler: no __context__


def _classify(job: MapJob, index: int) -> BlockResult:
    ctx = context(job)
    win = job.window(index)
    shape = (int(win.height), int(win.width))
    x, ok = prepare_block(job, index)
    with one_thread():
        p = predict_proba(ctx, x, job.batch)
    classes = np.full(ok.shape, NODATA_CLASS, np.uint8)
    if len(p):  # below --min-probability: not labelled (nodata), the probabilities kept
        sure = p.max(axis=1) >= job.min_probability
        classes[ok] = np.where(sure, ctx.codes[p.argmax(axis=1)], NODATA_CLASS)
    probs = unc = None
    if job.probabilities:
        probs = np.full((len(ctx.codes), ok.size), NODATA_SCALED, np.uint8)
        probs[:, ok] = _scaled(p.T)
        probs = probs.reshape(-1, *shape)
    if job.uncertainty != "none":
        unc = np.full(ok.shape, NODATA_SCALED, np.uint8)
        unc[ok] = _scaled(uncertainty_of(p, job.uncertainty))
        unc = unc.reshape(shape)
    ids, sums, counts = _field_sums(ctx, win, ok, p, shape)
    return BlockResult(index, classes.reshape(shape), probs, unc, ids, sums, counts)
