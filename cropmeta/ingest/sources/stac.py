"""The ``stac`` layout: STAC items as providers deliver them, loaded with odc-stac.

The items come from a local JSON file or an ``http(s)://`` URL: an ItemCollection (a search
result), an Item, or a Catalog/Collection with items. Each item is one acquisition of one
tile; its assets are resolved to bands by :mod:`.stac_bands` (earth-search's ``red``/``nir08``/
``scl``, the Planetary Computer's ``B04``/``B8A``/``SCL``, Landsat's, or the asset's own key).
Hrefs may be local paths (absolute, ``file://``, or relative to the JSON file) or remote
(``http(s)://``, ``s3://``, ``gs://``), read by GDAL's virtual file systems with range
requests, so only the blocks a window needs travel.

odc-stac (rather than stackstac: it reads items without the projection extension, honours
each asset's own grid, and fuses same-day items without dask graphs per pixel) builds one
lazy cube on one grid:

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

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

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
from cropmeta.ingest.sources.stac_bands import (
    CLASS_BANDS,
    DEFAULT_BANDS,
    LANDSAT_KEYS,
    SENTINEL2_KEYS,
    AmbiguousAssets,
    AssetBand,
    item_bands,
)

REMOTE = ("http://", "https://", "s3://", "gs://", "az://", "/vsi")
#: GDAL settings for remote reads: no folder listings, retries, a block cache.
REMOTE_GDAL = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2,.vrt",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",  # a COG's header in one request
    "CPL_VSIL_CURL_CACHE_SIZE": str(256 * 2**20),  # blocks read once, not once per window
}
#: Pixels of one lazily read block of one band: full-width rows, as many as make this many
#: pixels (at least 512), the rows of :meth:`StacStack.windows`, so that a window's band is
#: one read (each read of a remote asset costs requests; each task, odc-stac's overhead).
BLOCK_PIXELS = 2**22


def rows_per_block(width: int) -> int:
    """Rows of a window (and of a cube chunk) of a grid ``width`` pixels wide."""
    return max(512, BLOCK_PIXELS // max(width, 1))


#: The quality bands read with a spec's bands, the first the items hold.
CLASS_BANDS_ORDER = ("SCL", "QA_PIXEL")
#: Threads reading a window's bands at once where some are remote: the reads wait on the
#: network (GDAL releases the GIL; 8 read the demo region over HTTP 2× faster than 2), and the
#: values do not depend on the order. Local files get one thread per core.
READERS = 8
#: Bytes of values one read may fetch ahead: several dates of the whole grid (see
#: :meth:`StacStack._fetch`).
FETCH_BYTES = 2**29


def is_remote(href: str) -> bool:
    """Whether ``href`` is read over a network (HTTP(S), S3, GCS, Azure, a GDAL /vsi path)."""
    return href.startswith(REMOTE)


@dataclass(frozen=True)
class Extent:
    """An area to read: ``bounds`` (left, bottom, right, top) in ``crs``."""

    bounds: tuple[float, float, float, float]
    crs: CRS


def read_items(source: str | Path) -> tuple[list[pystac.Item], str]:
    """The items of a STAC JSON file or URL, and the base that relative hrefs start from."""
    text = str(source)
    remote = is_remote(text)
    where = text if remote else Path(text)
    if not remote and not Path(text).is_file():
        raise InputError(where, "STAC file not found")
    try:
        if remote:
            payload = pystac.StacIO.default().read_text(text)
        else:
            payload = Path(text).read_text(encoding="utf-8")
        kind = json.loads(payload).get("type")
        if kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(json.loads(payload)).items)
        else:
            obj = pystac.read_file(text)
            items = (
                [obj]
                if isinstance(obj, pystac.Item)
                else list(obj.get_items(recursive=True))
                if isinstance(obj, pystac.Catalog)
                else None
            )
            if items is None:
                raise InputError(where, "not a STAC ItemCollection, Item, Catalog or Collection")
    except InputError:
        raise
    except Exception as exc:  # urllib, json and pystac raise many types for a bad source
        problem = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(where, f"not a readable STAC JSON ({problem[:200]})") from None
    if not items:
        raise InputError(where, "the STAC file lists no items")
    base = text.rsplit("/", 1)[0] + "/" if remote else str(Path(text).resolve().parent) + "/"
    return items, base


def absolute_href(href: str, item: pystac.Item, base: str) -> str:
    """``href`` as a URL or an absolute local path: relative ones start from the item's own
    JSON file where it has one, else from the STAC file's folder (or URL)."""
    if href.startswith("file:"):
        return unquote(urlparse(href).path)
    if is_remote(href) or Path(href).is_absolute():
        return href
    own = item.get_self_href()
    start = own.rsplit("/", 1)[0] + "/" if own else base
    if is_remote(start):
        return urljoin(start, href)
    return str((Path(start) / href).resolve())


def solar_day(item: pystac.Item, where: Path | str) -> date:
    """The local solar day of the acquisition (UTC time + longitude / 15 h): the day by which
    same-day items are mosaicked."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(where, f"item {item.id!r} has no datetime")
    lon = 0.0 if item.bbox is None else (item.bbox[0] + item.bbox[2]) / 2
    return (when + timedelta(hours=lon / 15)).date()


@dataclass
class _Plan:
    """What :func:`open_stac` found in the items before loading."""

    where: Path | str  # the STAC file or URL, named in errors about the items as a whole
    items: list[pystac.Item]
    bands: list[dict[str, AssetBand]]
    days: list[date]
    headers: dict[str, rasterio.profiles.Profile] = field(default_factory=dict)

    def header(self, href: str, item: pystac.Item) -> dict:
        """The raster header of ``href`` (opened once): its CRS, grid, scales and nodata."""
        if href not in self.headers:
            try:
                with rasterio.Env(**REMOTE_GDAL), rasterio.open(href) as src:
                    self.headers[href] = dict(
                        crs=src.crs, transform=src.transform, width=src.width,
                        height=src.height, scales=src.scales, offsets=src.offsets,
                        nodata=src.nodata,
                    )  # fmt: skip
            except RasterioError as exc:
                raise InputError(
                    _where(href), f"item {item.id!r}: cannot open raster ({read_problem(exc)})"
                ) from None
        return self.headers[href]


def _where(href: str) -> Path | str:
    return href if is_remote(href) else Path(href)


def _requested(name: str, available: list[str]) -> str | None:
    """The band a spec's ``name`` asks for: a band's own name (any case) or a provider key."""
    folded = {b.casefold(): b for b in available}
    for candidate in (name, SENTINEL2_KEYS.get(name.casefold()), LANDSAT_KEYS.get(name.casefold())):
        if candidate and candidate.casefold() in folded:
            return folded[candidate.casefold()]
    return None


def _choose_bands(plan: _Plan, spec: RasterSpec, where: Path | str) -> tuple[list[str], dict]:
    """The bands to read, in order, and the names a spec used for them (name → band).

    A spec's ``bands`` (and ``quality_band``, else SCL or QA_PIXEL where the items hold it) are
    looked up by band name or provider key, any case. By default: the sensor's usual bands
    (:data:`~.stac_bands.DEFAULT_BANDS`) and its quality band where the items hold them, or,
    for items of no known provider, every band.
    Every item must hold every band read.
    """
    seen = sorted(set().union(*plan.bands))
    used: dict[str, str] = {}
    if spec.bands:
        for name in [*spec.bands, *([spec.quality_band] if spec.quality_band else [])]:
            band = _requested(name, seen)
            if band is None:
                raise InputError(
                    where, f"band {name!r} matches no asset (bands: {', '.join(seen)})"
                )
            used[name] = band
        chosen = list(dict.fromkeys(used.values()))
        quality = [q for q in CLASS_BANDS_ORDER if q in seen]
        if not spec.quality_band and quality:  # clouds are masked unless asked otherwise
            chosen = list(dict.fromkeys([*chosen, quality[0]]))
    elif any(record.known for bands in plan.bands for record in bands.values()):
        chosen = [b for b in DEFAULT_BANDS if b in seen]
        if spec.quality_band:
            used[spec.quality_band] = _requested(spec.quality_band, seen) or spec.quality_band
            chosen = list(dict.fromkeys([*chosen, used[spec.quality_band]]))
    else:
        chosen = seen
    for bands, item in zip(plan.bands, plan.items, strict=True):
        lacking = [b for b in chosen if b not in bands]
        if lacking:
            raise InputError(where, f"item {item.id!r} lacks band(s) {', '.join(lacking)}")
    return chosen, used


def _native(record: AssetBand, item: pystac.Item, plan: _Plan) -> tuple[CRS, Affine, int, int]:
    """An asset's own CRS and grid: its (or its item's) ``proj:*`` fields, else its header."""
    asset = item.assets[record.key]
    fields = {**item.properties, **asset.extra_fields}
    code = fields.get("proj:code") or (
        f"EPSG:{fields['proj:epsg']}" if fields.get("proj:epsg") else None
    )
    if code and fields.get("proj:transform") and fields.get("proj:shape"):
        rows, cols = fields["proj:shape"]
        return CRS.from_user_input(code), Affine(*fields["proj:transform"][:6]), cols, rows
    head = plan.header(record.href, item)
    return head["crs"], head["transform"], head["width"], head["height"]


def choose_grid(
    plan: _Plan, bands: list[str], spec: RasterSpec, extent: Extent | None
) -> tuple[CRS, Affine, int, int]:
    """The grid every band is read on (see the module docstring): CRS, transform, width, height."""
    natives = [
        _native(bands_of[b], item, plan)
        for item, bands_of in zip(plan.items, plan.bands, strict=True)
        for b in bands
    ]
    crs_count = Counter(n[0].to_wkt() for n in natives)
    crs = (
        CRS.from_user_input(spec.crs) if spec.crs else CRS.from_wkt(crs_count.most_common(1)[0][0])
    )
    in_crs = [n for n in natives if n[0] == crs] or natives
    res = spec.resolution or min(abs(n[1].a) for n in in_crs)
    anchor = min(in_crs, key=lambda n: abs(n[1].a))[1]  # the finest native grid in that CRS
    if spec.bounds is not None:
        left, bottom, right, top = spec.bounds
    elif extent is not None:
        left, bottom, right, top = transform_bounds(extent.crs, crs, *extent.bounds)
    else:
        boxes = [transform_bounds(c, crs, *array_bounds(h, w, t)) for c, t, w, h in natives]
        left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)
        right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)
    if spec.crs is None or spec.crs == crs:  # snap outwards to the native pixel grid
        x0, y0 = anchor.c % res, anchor.f % res
        left = x0 + math.floor((left - x0) / res + 1e-9) * res
        right = x0 + math.ceil((right - x0) / res - 1e-9) * res
        bottom = y0 + math.floor((bottom - y0) / res + 1e-9) * res
        top = y0 + math.ceil((top - y0) / res - 1e-9) * res
    width, height = round((right - left) / res), round((top - bottom) / res)
    if width < 1 or height < 1:
        raise InputError(plan.where, "the area to read is empty")
    return crs, Affine(res, 0, left, 0, -res, top), width, height


def _scaling(plan: _Plan, bands: list[str], spec: RasterSpec) -> tuple[np.ndarray, ...]:
    """Each date's (scale, offset) per band, and each band's nodata: the items' own, else the
    asset file's header, else none; a spec's values replace them. Items of one day must agree."""
    dates = sorted(set(plan.days))
    scales, offsets = np.ones((len(dates), len(bands))), np.zeros((len(dates), len(bands)))
    nodata: list[float | None] = [None] * len(bands)
    chosen: dict[tuple[int, int], tuple[float, float, str]] = {}
    for item, bands_of, day in zip(plan.items, plan.bands, plan.days, strict=True):
        t = dates.index(day)
        for b, band in enumerate(bands):
            record = bands_of[band]
            scale, offset, missing = record.scale, record.offset, record.nodata
            if scale is None and band not in CLASS_BANDS and spec.scale is None:
                head = plan.header(record.href, item)
                scale, offset = (
                    head["scales"][record.band_no - 1],
                    head["offsets"][record.band_no - 1],
                )
                missing = head["nodata"] if missing is None else missing
            value = (scale if scale is not None else 1.0, offset or 0.0, item.id)
            other = chosen.setdefault((t, b), value)
            if other[:2] != value[:2]:
                raise InputError(
                    plan.where,
                    f"items {other[2]!r} and {item.id!r} of {day} store band {band} with "
                    f"different scale/offset ({other[0]:g}/{other[1]:g} vs {value[0]:g}/"
                    f"{value[1]:g}: different processing baselines?) and cannot be mosaicked",
                )
            scales[t, b], offsets[t, b] = value[:2]
            nodata[b] = missing if nodata[b] is None else nodata[b]
    if spec.scale is not None:
        scales[:] = spec.scale
    if spec.offset is not None:
        offsets[:] = spec.offset
    if spec.nodata is not None:
        nodata = [spec.nodata] * len(bands)
    return scales, offsets, nodata


def _odc_items(plan: _Plan, bands: list[str], nodata: list[float | None]) -> tuple[list, list]:
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
            crs, transform, width, height = _native(record, item, plan)
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


def _check_overlap(items: list[pystac.Item], extent: Extent, where: Path | str) -> None:
    """Refuse items none of which overlaps the area to read (by their lon/lat ``bbox``): the
    labels' extent or the spec's ``bounds``."""
    boxes = [item.bbox for item in items if item.bbox and len(item.bbox) == 4]
    if len(boxes) < len(items):
        return  # an item without a bbox: its footprint comes from its header, later
    lon0, lat0, lon1, lat1 = transform_bounds(extent.crs, "EPSG:4326", *extent.bounds)
    if not any(b[0] <= lon1 and b[2] >= lon0 and b[1] <= lat1 and b[3] >= lat0 for b in boxes):
        raise InputError(
            where,
            f"no item overlaps the area to read (the labels' extent or the spec's bounds: "
            f"lon {lon0:.4f}…{lon1:.4f}, lat {lat0:.4f}…{lat1:.4f})",
        )


def open_stac(path: Path | str, spec: RasterSpec, extent: Extent | None = None) -> StacStack:
    """The items of ``path`` (a STAC JSON file or URL) as one lazily read stack on one grid;
    ``extent`` (e.g. the labels') limits the area read where the spec gives no ``bounds``."""
    items, base = read_items(path)
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
    plan = _Plan(where, items, bands_of, [solar_day(item, where) for item in items])
    bands, used = _choose_bands(plan, spec, where)
    scales, offsets, nodata = _scaling(plan, bands, spec)
    crs, transform, width, height = choose_grid(plan, bands, spec, extent)
    _check_overlap(items, Extent(array_bounds(height, width, transform), crs), where)
    cube = _load(plan, bands, nodata, crs, transform, width, height, spec)
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
        dates=sorted(set(plan.days)),
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
    )


def _load(
    plan: _Plan,
    bands: list[str],
    nodata: list[float | None],
    crs: CRS,
    transform: Affine,
    width: int,
    height: int,
    spec: RasterSpec,
) -> xr.Dataset:
    """The lazy odc-stac cube (time, y, x) of ``bands``, one time step per solar day."""
    from odc.geo.geobox import GeoBox
    from odc.stac import load

    items, names = _odc_items(plan, bands, nodata)
    res = abs(transform.a)
    resampling = {}
    for band, name in zip(bands, names, strict=True):
        finest = min(
            abs(_native(r[band], i, plan)[1].a) for i, r in zip(plan.items, plan.bands, strict=True)
        )
        coarser = res > finest * 1.001
        if band in CLASS_BANDS:
            resampling[name] = "mode" if coarser else "nearest"
        else:
            resampling[name] = spec.resampling or ("average" if coarser else "bilinear")
    day_of = {item.id: day for item, day in zip(plan.items, plan.days, strict=True)}
    try:
        cube = load(
            items,
            bands=names,
            geobox=GeoBox((height, width), transform, crs),
            groupby=lambda item, _parsed, _i: day_of[item.id].isoformat(),
            resampling=resampling,
            dtype="float32",
            chunks={"y": rows_per_block(width), "x": width},  # one task per band and window
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
    cube: xr.Dataset
    dates: list[date]
    crs: CRS
    transform: Affine
    width: int
    height: int
    band_names: list[str]
    aliases: dict[str, str]  # a name the spec used → the band it means
    asset_keys: dict[str, list[str]]  # band → the asset key(s) it was read from
    assets_at: dict[str, str]  # href → "item …, asset …: " (named when its read fails)
    scales: np.ndarray  # (date, band)
    offsets: np.ndarray
    nodata: list[float | None]
    files: list[Path]
    valid_range: tuple[float, float] | None = None
    remote: bool = False  # some asset is read over a network
    fetched: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def origin(self) -> Path:
        return Path(self.source) if isinstance(self.source, Path) else Path(self.source)

    @property
    def source_files(self) -> list[Path]:
        """The local STAC files and asset files (remote assets cannot be signed)."""
        return self.files

    def band_index(self, name: str, path: Path | None = None) -> int:
        """Position of band ``name``: a band's name (any case), a name the spec used, or a
        provider's key for it (``red`` = ``B04``)."""
        band = self.aliases.get(name) or _requested(name, self.band_names)
        return super().band_index(band or name, path)

    def windows(self, block_rows: int | None = None) -> list[Window]:
        """Full-width row blocks of :func:`rows_per_block` rows (the cube's chunks) by default."""
        return super().windows(block_rows or rows_per_block(self.width))

    def read(self, i: int, prep: Preparation, window: Window | None = None) -> np.ndarray:
        """Date ``i`` of ``window`` as reflectance. The values come from one read of several
        dates at once (:meth:`_fetch`), kept until asked for: a read costs a request per
        asset and a task of odc-stac's, fewer and larger ones go faster, most of all remotely.
        """
        idx = [self.band_index(b) for b in prep.bands]
        q = self.band_index(prep.quality_band) if prep.quality_band else None
        names = tuple(dict.fromkeys(self.band_names[k] for k in [*idx, *([q] if q else [])]))
        box = (0, 0, self.height, self.width) if window is None else (
            int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        )  # fmt: skip
        key = (i, box, names)
        if key not in self.fetched:
            self._fetch(i, box, names)
        block = self.fetched.pop(key)
        raw = [block[self.band_names[k]] for k in idx]
        quality = block[self.band_names[q]] if q is not None else None
        nodata = [self.nodata[k] for k in idx]
        return to_reflectance(
            raw, nodata, self.scales[i, idx], self.offsets[i, idx], quality, prep, self.valid_range
        )

    def _fetch(self, i: int, box: tuple[int, int, int, int], names: tuple[str, ...]) -> None:
        """Read ``names`` in ``box`` for date ``i`` and the dates after it, as many as
        :data:`FETCH_BYTES` of the whole grid allows (so that every window of those dates may
        wait in memory at once), into :attr:`fetched`."""
        per_date = 4 * len(names) * self.width * self.height
        end = min(len(self.dates), i + max(1, FETCH_BYTES // per_date))
        r0, c0, rows, cols = box
        part = self.cube[list(names)].isel(
            time=slice(i, end), y=slice(r0, r0 + rows), x=slice(c0, c0 + cols)
        )
        failed: list[str] = []
        try:
            with rasterio.Env(**REMOTE_GDAL), _failures_into(failed):
                threads = READERS if self.remote else os.cpu_count() or 1
                block = part.compute(scheduler="threads", num_workers=threads)
        except Exception as exc:  # GDAL, HTTP and decompression errors surface here
            days = f"{self.dates[i]}" + (f"…{self.dates[end - 1]}" if end - 1 > i else "")
            problem = f"cannot read {days} ({read_problem(exc)})"
            if not failed:
                raise InputError(self.source, problem) from None
            asset = self.assets_at.get(failed[0], "")
            raise InputError(_where(failed[0]), f"{asset}{problem}") from None
        for t in range(i, end):
            self.fetched[(t, box, names)] = {n: block[n].values[t - i] for n in names}


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
