"""The ``stac`` layout: STAC items as providers deliver them, loaded with odc-stac.

The items come (:mod:`.stac_plan`, which also decides the bands, scaling and grid before
anything is read) from a local JSON file or an ``http(s)://`` URL: an ItemCollection (a search
result), an Item, or a Catalog/Collection with items. Each item is one acquisition of one
tile; its assets are resolved to bands by :mod:`.stac_bands` (earth-search's ``red``/``nir08``/
``scl``, the Planetary Computer's ``B04``/``B8A``/``SCL``, Landsat's, or the asset's own key).
Hrefs may be local paths (absolute, ``file://``, or relative to the JSON file) or remote
(``http(s)://``, ``s3://``, ``gs://``), read by GDAL's virtual file systems with range
requests, so only the blocks a window needs travel.

Every band of every day comes onto one grid; a day whose assets all lie on it already (the
grid's CRS, pixel edges on its pixel edges, whole multiples of its pixel size: a Sentinel-2
tile's 10, 20 and 60 m bands) is read directly (:mod:`.stac_direct`: odc-stac's values at a
fraction of its cost per read), any other day through odc-stac (rather than stackstac: it
reads items without the projection extension, honours each asset's own grid, and fuses
same-day items without dask graphs per pixel), which warps. The rules are the same:

* **the grid** is the spec's ``crs``/``resolution``/``bounds`` where given; else the CRS most
  items are in, the finest native resolution among the bands read, and the extent of the
  labels (``extent``, given by preprocess) or else of all items, snapped to the native pixel
  grid of that CRS so that 10 m pixels are read exactly as stored;
* **bands at other resolutions or in other CRSs** (20 m, 60 m, a neighbouring UTM zone) are
  resampled into it: reflectance bilinearly (by average when the grid is coarser), class bands
  (SCL, QA_PIXEL) by nearest neighbour (by mode when coarser);
* **items of the same day** (overlapping tiles, neighbouring orbits) are mosaicked, the first
  valid pixel winning, grouped by local solar day.

Stored values become reflectance on every read with each date's own scale and offset (see
:func:`~.stac_bands.scaling`): a collection may span the 2022 processing-baseline change,
whose offset then applies to the later dates only. Items of one day that disagree on a band's
scaling cannot be mosaicked and are refused.

:attr:`StacStack.source_files` (what a map's resume check signs) are the local JSON files and
local asset files; remote assets are not signed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pystac
import rasterio
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.transform import array_bounds
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.prepare import Preparation
from cropmeta.ingest.sources.base import RasterStack, to_reflectance
from cropmeta.ingest.sources.geotiff import read_problem
from cropmeta.ingest.sources.stac_bands import AmbiguousAssets, item_bands
from cropmeta.ingest.sources.stac_direct import Placed, UnreadableAsset, days_on_grid, mosaic
from cropmeta.ingest.sources.stac_plan import (
    REMOTE_GDAL,
    Extent,
    ItemPlan,
    absolute_href,
    check_overlap,
    choose_bands,
    choose_grid,
    is_remote,
    native_grid,
    read_items,
    requested_band,
    resampling,
    scaling,
    solar_day,
    where_of,
)

#: Pixels of one lazily read block of one band: full-width rows, as many as make this many
#: pixels (at least 512), the rows of :meth:`StacStack.windows`, so that a window's band is
#: one read (each read of a remote asset costs requests; each task, odc-stac's overhead).
BLOCK_PIXELS = 2**22


def rows_per_block(width: int) -> int:
    """Rows of a window (and of a cube chunk) of a grid ``width`` pixels wide."""
    return max(512, BLOCK_PIXELS // max(width, 1))


#: Threads reading bands in the background where some are remote: the reads wait on the
#: network (GDAL releases the GIL), and the values do not depend on the order. Local files
#: get one thread per core.
READERS = 8
#: Bytes of values read ahead: several dates of the whole grid (see
#: :meth:`StacStack._read_ahead`).
FETCH_BYTES = 2**29


def _odc_items(plan: ItemPlan, bands: list[str], nodata: list[float | None]) -> tuple[list, list]:
    """Copies of the items whose assets are keyed by the band they hold, with absolute hrefs,
    a footprint (from a header where an item has none) and each band's nodata, and the name
    odc-stac reads each band by (``band`` or, for a band of a multi-band asset, ``band.N``)."""
    names: dict[str, str] = {}
    copies = []
    for item, bands_of in zip(plan.items, plan.bands, strict=True):
        copy = item.clone()
        copy.assets = {}
        for band, missing in zip(bands, nodata, strict=True):
            record = bands_of[band]
            source = item.assets[record.key]
            crs, transform, width, height = native_grid(record, item, plan)
            epsg = crs.to_epsg()
            extra: dict = {"proj:epsg": epsg} if epsg else {"proj:wkt2": crs.to_wkt()}
            extra |= {"proj:transform": list(transform)[:6], "proj:shape": [height, width]}
            listed = source.extra_fields.get("raster:bands") or [{}]
            count = max(len(listed), len(source.extra_fields.get("eo:bands") or []), 1)
            raster = [dict(listed[j]) if j < len(listed) else {} for j in range(count)]
            raster[record.band_no - 1]["nodata"] = missing
            extra["raster:bands"] = raster
            copy.assets[band] = pystac.Asset(record.href, roles=["data"], extra_fields=extra)
            name = band if count == 1 else f"{band}.{record.band_no}"
            if names.setdefault(band, name) != name:
                raise InputError(
                    plan.where, f"band {band} is band {record.band_no} of its asset in item "
                    f"{item.id!r} but not in the others"
                )  # fmt: skip
        if copy.geometry is None or copy.bbox is None:
            head = plan.header(bands_of[bands[0]].href, item)
            box = array_bounds(head["height"], head["width"], head["transform"])
            lon0, lat0, lon1, lat1 = transform_bounds(head["crs"], "EPSG:4326", *box)
            copy.bbox = [lon0, lat0, lon1, lat1]
            copy.geometry = {
                "type": "Polygon",
                "coordinates": [
                    [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
                ],
            }
        copies.append(copy)
    return copies, [names[b] for b in bands]


def open_stac(path: Path | str, spec: RasterSpec, extent: Extent | None = None) -> StacStack:
    """The items of ``path`` (a STAC JSON file or URL) as one lazily read stack on one grid;
    ``extent`` (e.g. the labels') limits the area read where the spec gives no ``bounds``."""
    if spec.bounds is not None and spec.crs is not None:  # a pinned grid: search over it
        extent = Extent(tuple(spec.bounds), CRS.from_user_input(spec.crs))
    items, base = read_items(path, extent)
    where = str(path) if is_remote(str(path)) else Path(path)
    try:
        bands_of = [item_bands(item) for item in items]
    except AmbiguousAssets as exc:
        raise InputError(where, str(exc)) from None
    for item, bands in zip(items, bands_of, strict=True):
        for band, record in bands.items():
            href = absolute_href(record.href, item, base)
            if not is_remote(href) and not Path(href).is_file():
                raise InputError(Path(href), f"item {item.id!r}: asset {record.key!r} not found")
            bands[band] = replace(record, href=href)
    plan = ItemPlan(where, items, bands_of, [solar_day(item, where) for item in items])
    bands, used = choose_bands(plan, spec, where)
    scales, offsets, nodata = scaling(plan, bands, spec)
    crs, transform, width, height = choose_grid(plan, bands, spec, extent)
    check_overlap(items, Extent(array_bounds(height, width, transform), crs), where)
    methods = resampling(plan, bands, abs(transform.a), spec)
    direct = days_on_grid(plan, bands, methods, crs, transform)
    dates = sorted(set(plan.days))
    warped = [j for j, day in enumerate(plan.days) if dates.index(day) not in direct]
    cube = None
    if warped:  # odc-stac's cube of the days not on the grid
        part = ItemPlan(
            where, [items[j] for j in warped], [plan.bands[j] for j in warped],
            [plan.days[j] for j in warped], plan.headers,
        )  # fmt: skip
        cube = _load(part, bands, nodata, methods, GeoGrid(crs, transform, width, height))
    local = [
        Path(r.href)
        for bs in plan.bands
        for b, r in bs.items()
        if b in bands and not is_remote(r.href)
    ]
    files = [] if is_remote(str(path)) else [Path(path).resolve()]
    files += [
        Path(h).resolve()
        for h in (item.get_self_href() for item in items)
        if h and not is_remote(h)
    ]
    assets_at = {
        r.href: f"item {item.id!r}, asset {r.key!r}: "
        for item, bs in zip(plan.items, plan.bands, strict=True)
        for r in bs.values()
    }
    return StacStack(
        source=where,
        cube=cube,
        dates=dates,
        crs=crs,
        transform=transform,
        width=width,
        height=height,
        band_names=bands,
        aliases=used,
        asset_keys={b: sorted({bs[b].key for bs in plan.bands}) for b in bands},
        assets_at=assets_at,
        scales=scales,
        offsets=offsets,
        nodata=nodata,
        files=list(dict.fromkeys([*files, *local])),
        valid_range=spec.valid_range,
        remote=any(is_remote(h) for h in assets_at),
        direct=direct,
    )


@dataclass(frozen=True)
class GeoGrid:
    """The output grid."""

    crs: CRS
    transform: Affine
    width: int
    height: int


def _load(
    plan: ItemPlan,
    bands: list[str],
    nodata: list[float | None],
    methods: list[str],
    grid: GeoGrid,
) -> xr.Dataset:
    """The lazy odc-stac cube (time, y, x) of ``bands``, one time step per solar day."""
    from odc.geo.geobox import GeoBox
    from odc.stac import load

    items, names = _odc_items(plan, bands, nodata)
    day_of = {item.id: day for item, day in zip(plan.items, plan.days, strict=True)}
    try:
        cube = load(
            items,
            bands=names,
            geobox=GeoBox((grid.height, grid.width), grid.transform, grid.crs),
            groupby=lambda item, _parsed, _i: day_of[item.id].isoformat(),
            resampling=dict(zip(names, methods, strict=True)),
            dtype="float32",
            chunks={"y": rows_per_block(grid.width), "x": grid.width},  # a task per band, window
            fail_on_error=True,
        )
    except (ValueError, KeyError, RasterioError) as exc:
        raise InputError(plan.where, f"cannot build the cube ({str(exc)[:200]})") from None
    if cube.sizes["time"] != len(set(plan.days)):
        raise InputError(plan.where, "the items' days did not group into one step per day")
    return cube.rename({n: b for n, b in zip(names, bands, strict=True) if n != b})


@dataclass(frozen=True)
class StacStack(RasterStack):
    """The items' bands on one grid (see the module docstring), read window by window."""

    source: Path | str
    cube: xr.Dataset | None  # odc-stac's, of the days not read directly (None: every day is)
    aliases: dict[str, str]  # a name the spec used → the band it means
    asset_keys: dict[str, list[str]]  # band → the asset key(s) it was read from
    assets_at: dict[str, str]  # href → "item …, asset …: " (named when its read fails)
    scales: np.ndarray  # (date, band)
    offsets: np.ndarray
    nodata: list[float | None]
    files: list[Path]
    valid_range: tuple[float, float] | None = None
    remote: bool = False  # some asset is read over a network
    #: date index → band → its assets, for the days read without odc-stac (:mod:`.stac_direct`)
    direct: dict[int, dict[str, list[Placed]]] = field(default_factory=dict, repr=False)
    #: (date, box, bands) → band → values or their background read (:meth:`read`)
    fetched: dict = field(default_factory=dict, compare=False, repr=False)
    readers: list = field(default_factory=list, compare=False, repr=False)  # the read threads

    @property
    def origin(self) -> Path:
        return Path(self.source)

    @property
    def source_files(self) -> list[Path]:
        """The local STAC files and asset files (remote assets cannot be signed)."""
        return self.files

    def band_index(self, name: str, path: Path | None = None) -> int:
        """Position of band ``name``: a band's name (any case), a name the spec used, or a
        provider's key for it (``red`` = ``B04``)."""
        band = self.aliases.get(name) or requested_band(name, self.band_names)
        return super().band_index(band or name, path)

    def windows(self, block_rows: int | None = None) -> list[Window]:
        """Full-width row blocks of :func:`rows_per_block` rows (the cube's chunks) by default."""
        return super().windows(block_rows or rows_per_block(self.width))

    def read(self, i: int, prep: Preparation, window: Window | None = None) -> np.ndarray:
        """Date ``i`` of ``window`` as reflectance. The dates after it are read meanwhile, in
        the background (:meth:`_read_ahead`), so that reading overlaps with whatever the caller
        does with date ``i``; a read costs requests per asset (and a task of odc-stac's), and
        concurrent ones hide the network's latency."""
        idx = [self.band_index(b) for b in prep.bands]
        q = self.band_index(prep.quality_band) if prep.quality_band else None
        names = tuple(dict.fromkeys(self.band_names[k] for k in [*idx, *([q] if q else [])]))
        box = (0, 0, self.height, self.width) if window is None else (
            int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        )  # fmt: skip
        try:
            self._read_ahead(i, box, names)
            entry = self.fetched.pop((i, box, names))
            block = entry.result() if isinstance(entry, Future) else {
                n: v.result() for n, v in entry.items()
            }  # fmt: skip
        except InputError:
            self._cancel()
            raise
        raw = [block[self.band_names[k]] for k in idx]
        quality = block[self.band_names[q]] if q is not None else None
        nodata = [self.nodata[k] for k in idx]
        return to_reflectance(
            raw, nodata, self.scales[i, idx], self.offsets[i, idx], quality, prep, self.valid_range
        )

    def _read_ahead(self, i: int, box: tuple[int, int, int, int], names: tuple[str, ...]) -> None:
        """Make sure ``names`` in ``box`` are read, or being read, for date ``i`` and the dates
        after it, as many as :data:`FETCH_BYTES` of the whole grid allows (so that every window
        of those dates may wait in memory at once), into :attr:`fetched`, by background threads:
        the days on the grid directly, a band at a time, the others (another CRS, off the grid)
        through odc-stac's cube, a day at a time."""
        per_date = 4 * len(names) * self.width * self.height
        end = min(len(self.dates), i + max(1, FETCH_BYTES // per_date))
        if not self.readers:
            threads = READERS if self.remote else os.cpu_count() or 1
            self.readers.append(ThreadPoolExecutor(threads, thread_name_prefix="stac-read"))
        pool = self.readers[0]
        for t in range(i, end):
            key = (t, box, names)
            if key in self.fetched:
                continue
            if t in self.direct:
                self.fetched[key] = {n: pool.submit(self._read_on_grid, t, n, box) for n in names}
            else:
                self.fetched[key] = pool.submit(self._read_warped, t, box, names)

    def _read_on_grid(self, t: int, name: str, box: tuple[int, int, int, int]) -> np.ndarray:
        """Band ``name`` of date ``t`` in ``box`` (:func:`~.stac_direct.mosaic`), read once
        more where it fails (a dropped connection passes), else named in an InputError."""
        nodata = self.nodata[self.band_names.index(name)]
        with rasterio.Env(**REMOTE_GDAL):  # a worker thread's own settings
            try:
                return mosaic(self.direct[t][name], box, nodata)
            except UnreadableAsset:
                try:
                    return mosaic(self.direct[t][name], box, nodata)
                except UnreadableAsset as exc:
                    problem = f"cannot read {self.dates[t]} ({read_problem(exc.__cause__)})"
                    asset = self.assets_at.get(exc.href, "")
                    raise InputError(where_of(exc.href), f"{asset}{problem}") from None

    def _cancel(self) -> None:
        """Stop reading ahead (after a failed read): the reads not started are dropped."""
        for entry in self.fetched.values():
            for future in [entry] if isinstance(entry, Future) else entry.values():
                future.cancel()
        self.fetched.clear()

    def _read_warped(
        self, t: int, box: tuple[int, int, int, int], names: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """Date ``t`` in ``box`` from odc-stac's cube (which holds the days not on the grid)."""
        assert self.cube is not None
        step = [d for d in range(len(self.dates)) if d not in self.direct].index(t)
        r0, c0, rows, cols = box
        part = self.cube[list(names)].isel(
            time=[step], y=slice(r0, r0 + rows), x=slice(c0, c0 + cols)
        )
        with rasterio.Env(**REMOTE_GDAL):  # a worker thread's own settings
            try:
                block = part.compute(scheduler="synchronous")
            except Exception:  # GDAL, HTTP and decompression errors surface here
                block = self._again(part, t)
        return {n: block[n].values[0] for n in names}

    def _again(self, part: xr.Dataset, t: int) -> xr.Dataset:
        """A failed read once more, one asset after another: a passing failure (a dropped
        connection) is retried, and a lasting one is named by the first asset that fails, which
        concurrent reads cannot say for sure (their errors interleave)."""
        failed: list[str] = []
        try:
            with rasterio.Env(**REMOTE_GDAL), _failures_into(failed):
                return part.compute(scheduler="synchronous")
        except Exception as exc:
            problem = f"cannot read {self.dates[t]} ({read_problem(exc)})"
            if not failed:
                raise InputError(self.source, problem) from None
            asset = self.assets_at.get(failed[0], "")
            raise InputError(where_of(failed[0]), f"{asset}{problem}") from None


@contextmanager
def _failures_into(failed: list[str]) -> Iterator[None]:
    """Collect the assets odc-stac failed to read (its log names them; the exception it
    raises does not) into ``failed``, without its log reaching the user: the error will."""
    logger = logging.getLogger("odc.loader._rio")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.args and str(record.msg).startswith("Failed to load"):
                failed.append(str(record.args[0]))

    handler, propagate = Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
