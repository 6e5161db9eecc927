"""What STAC items hold, before anything is read: their bands, days, scaling and the grid.

:func:`read_items` reads the items (a JSON file or URL); :class:`ItemPlan` holds, per item, its
bands (:mod:`.stac_bands`) and solar day, with the raster headers opened where the items do not
say enough; :func:`choose_bands`, :func:`scaling` and :func:`choose_grid` decide what
:mod:`.stac` loads (see its docstring for the rules).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import numpy as np
import pystac
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.transform import array_bounds
from rasterio.warp import transform_bounds

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.sources.geotiff import read_problem
from cropmeta.ingest.sources.stac_bands import (
    CLASS_BANDS,
    DEFAULT_BANDS,
    LANDSAT_KEYS,
    SENTINEL2_KEYS,
    AssetBand,
)
from cropmeta.ingest.sources.stac_search import is_search, search_items

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
#: The quality bands read with a spec's bands, the first the items hold.
CLASS_BANDS_ORDER = ("SCL", "QA_PIXEL")


def is_remote(href: str) -> bool:
    """Whether ``href`` is read over a network (HTTP(S), S3, GCS, Azure, a GDAL /vsi path)."""
    return href.startswith(REMOTE)


@dataclass(frozen=True)
class Extent:
    """An area to read: ``bounds`` (left, bottom, right, top) in ``crs``."""

    bounds: tuple[float, float, float, float]
    crs: CRS


def read_items(source: str | Path, extent: Extent | None = None) -> tuple[list[pystac.Item], str]:
    """The items of a STAC JSON file or URL, or of a STAC API item search (a URL ending in
    ``/search``, run over ``extent`` where it gives no bbox: :mod:`.stac_search`), and the base
    that relative hrefs start from."""
    text = str(source)
    remote = is_remote(text)
    where = text if remote else Path(text)
    if is_search(text):
        area = None if extent is None else (extent.bounds, extent.crs)
        items = search_items(text, area)
        if not items:
            raise InputError(where, "the item search found no items over the area")
        return items, text.split("?")[0].rsplit("/", 1)[0] + "/"
    if not remote and not Path(text).is_file():
        raise InputError(where, "STAC file not found")
    try:
        if remote:
            payload = pystac.StacIO.default().read_text(text)
        else:
            payload = Path(text).read_text(encoding="utf-8")
        doc = json.loads(payload)
        if doc.get("type") == "FeatureCollection":  # not copied once more by pystac
            items = list(pystac.ItemCollection.from_dict(doc, preserve_dict=False).items)
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


def acquired(item: pystac.Item) -> datetime | None:
    """When the item was acquired: its datetime, else the start of its range."""
    return item.datetime or item.common_metadata.start_datetime


def solar_day(item: pystac.Item, where: Path | str) -> date:
    """The local solar day of the acquisition (UTC time + longitude / 15 h): the day by which
    same-day items are mosaicked."""
    when = acquired(item)
    if when is None:
        raise InputError(where, f"item {item.id!r} has no datetime")
    lon = 0.0 if item.bbox is None else (item.bbox[0] + item.bbox[2]) / 2
    return (when + timedelta(hours=lon / 15)).date()


@dataclass
class ItemPlan:
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
                    where_of(href), f"item {item.id!r}: cannot open raster ({read_problem(exc)})"
                ) from None
        return self.headers[href]


def where_of(href: str) -> Path | str:
    return href if is_remote(href) else Path(href)


def requested_band(name: str, available: list[str]) -> str | None:
    """The band a spec's ``name`` asks for: a band's own name (any case) or a provider key."""
    folded = {b.casefold(): b for b in available}
    for candidate in (name, SENTINEL2_KEYS.get(name.casefold()), LANDSAT_KEYS.get(name.casefold())):
        if candidate and candidate.casefold() in folded:
            return folded[candidate.casefold()]
    return None


def choose_bands(plan: ItemPlan, spec: RasterSpec, where: Path | str) -> tuple[list[str], dict]:
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
            band = requested_band(name, seen)
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
            used[spec.quality_band] = requested_band(spec.quality_band, seen) or spec.quality_band
            chosen = list(dict.fromkeys([*chosen, used[spec.quality_band]]))
    else:
        chosen = seen
    for bands, item in zip(plan.bands, plan.items, strict=True):
        lacking = [b for b in chosen if b not in bands]
        if lacking:
            raise InputError(where, f"item {item.id!r} lacks band(s) {', '.join(lacking)}")
    return chosen, used


def native_grid(
    record: AssetBand, item: pystac.Item, plan: ItemPlan
) -> tuple[CRS, Affine, int, int]:
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
    plan: ItemPlan, bands: list[str], spec: RasterSpec, extent: Extent | None
) -> tuple[CRS, Affine, int, int]:
    """The grid every band is read on (see the module docstring): CRS, transform, width, height."""
    natives = [
        native_grid(bands_of[b], item, plan)
        for item, bands_of in zip(plan.items, plan.bands, strict=True)
        for b in bands
    ]
    crs_count = Counter(n[0].to_wkt() for n in natives)
    try:
        crs = CRS.from_user_input(spec.crs or crs_count.most_common(1)[0][0])
    except (CRSError, ValueError) as exc:
        raise InputError(plan.where, f"--crs {spec.crs!r} is not a CRS ({exc})") from None
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


def scaling(plan: ItemPlan, bands: list[str], spec: RasterSpec) -> tuple[np.ndarray, ...]:
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


def check_overlap(items: list[pystac.Item], extent: Extent, where: Path | str) -> None:
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


def resampling(plan: ItemPlan, bands: list[str], res: float, spec: RasterSpec) -> list[str]:
    """How each band comes onto a grid of ``res``: class bands by nearest neighbour (mode when
    coarser than an asset), reflectance bilinearly (average when coarser) or as the spec says."""
    methods = []
    for band in bands:
        finest = min(
            abs(native_grid(r[band], i, plan)[1].a)
            for i, r in zip(plan.items, plan.bands, strict=True)
        )
        coarser = res > finest * 1.001
        if band in CLASS_BANDS:
            methods.append("mode" if coarser else "nearest")
        else:
            methods.append(spec.resampling or ("average" if coarser else "bilinear"))
    return methods
