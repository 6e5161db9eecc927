"""A region of the synthetic world as a provider delivers Sentinel-2: STAC items over COGs.

``write_provider_items(catalog, region, out, provider)`` turns one region's per-date tiles
into a STAC ItemCollection (``out/items.json``) shaped like the real items of earth-search
(:mod:`cropmeta.synth.earth_search`) or the Planetary Computer
(:mod:`cropmeta.synth.planetary_computer`), one Cloud-Optimized GeoTIFF per asset at the band's
native resolution (:mod:`cropmeta.synth.native`), so a STAC reader can be tested against
data whose truth is known:

* ``out/reference/`` holds the per-date layout of the same pixels (the world's 11-band files,
  same names), its 20 m bands and SCL being the 20 m COGs repeated over 2×2 pixels: a reader
  resampling 20 m → 10 m by nearest neighbour must match it exactly, by bilinear or average
  closely;
* on the dates of :func:`split_dates` (the 2nd, 5th, 8th… of the calendar) the region is two
  overlapping items, two MGRS-like tiles with their own ids and ``grid:code``, each a
  rectangle of ~60 % of the width, so a reader must mosaic them; on the date
  :data:`OTHER_ZONE_DATE` (the 5th) the second (eastern) one is in the nearer neighbouring UTM
  zone, its pixels warped there (bilinear; nearest for SCL), so a reader must reproject. The
  tiles are cut on 60 m block edges, so both hold the world's values where they overlap, and
  the reference stays the whole region on its own grid;
* hrefs are relative to ``out`` unless ``base_href`` is given (e.g.
  ``http://127.0.0.1:8000/region/``), under which every asset href is then absolute;
* ``boa_offset_applied`` (earth-search only) writes what earth-search's 2023 items hold:
  pixels with the +1000 DN offset removed (DN − 1000, at least 1) and the property true, while
  ``raster:bands`` still says offset −0.1. By default the pixels keep the world's DNs, the
  property is false and the metadata are right.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from pyproj import Transformer

from cropmeta.catalog import load_catalog
from cropmeta.errors import InputError, atomic_output
from cropmeta.ownership import claim, mark_folder
from cropmeta.synth import earth_search, planetary_computer
from cropmeta.synth.granules import (
    Granule,
    Grid,
    latitude_band,
    mgrs_square,
    scene_stats,
    sensing_time,
)
from cropmeta.synth.native import (
    ALIGN_PX,
    NATIVE_RES,
    Native,
    harmonize,
    native_date,
    reference_tile,
    reproject_to,
    write_cog,
)
from cropmeta.synth.phenology import BANDS

Provider = Literal["earth-search", "planetary-computer"]
PROVIDERS: dict[str, ModuleType] = {
    "earth-search": earth_search,
    "planetary-computer": planetary_computer,
}
KIND = "stac-items"
#: Every third date, starting with the second, is two overlapping items.
SPLIT_EVERY, SPLIT_FIRST = 3, 1
#: The (0-based) date whose second item lies in the neighbouring UTM zone.
OTHER_ZONE_DATE = 4
#: Share of the region's width each item of a split date covers (rounded to 60 m).
SPLIT_SHARE = 0.6
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Part:
    """One item of a date: the world's columns ``col0:col1``, maybe warped to ``epsg``."""

    col0: int
    col1: int
    index: int  # 0 or 1: which tile of the date
    epsg: int
    warped: bool


def split_dates(n_dates: int) -> list[int]:
    """The (0-based) dates written as two overlapping items."""
    return list(range(SPLIT_FIRST, n_dates, SPLIT_EVERY))


def parts(date_index: int, width: int, epsg: int, lon: float) -> list[Part]:
    """The items of one date: the whole width, or two overlapping ~60 % rectangles."""
    if date_index % SPLIT_EVERY != SPLIT_FIRST:
        return [Part(0, width, 0, epsg, False)]
    a = min(width, math.ceil(SPLIT_SHARE * width / ALIGN_PX) * ALIGN_PX)
    b = max(0, (width - a) // ALIGN_PX * ALIGN_PX)
    zone = epsg - 32600
    other = epsg + (1 if lon >= 6 * zone - 183 else -1)  # the nearer neighbouring zone
    warp = date_index == OTHER_ZONE_DATE
    return [Part(0, a, 0, epsg, False), Part(b, width, 1, other if warp else epsg, warp)]


def _provider(provider: str) -> ModuleType:
    if provider not in PROVIDERS:
        raise InputError(provider, f"unknown provider (known: {', '.join(PROVIDERS)})")
    return PROVIDERS[provider]


def _base(base_href: str | None) -> str:
    if base_href is None:
        return ""
    if "://" not in base_href:
        raise InputError(base_href, "base_href must be a URL such as http://127.0.0.1:8000/a/")
    return base_href if base_href.endswith("/") else base_href + "/"


def _tiles(catalog: Path, region: str) -> list[Path]:
    cat = load_catalog(catalog)
    spec = cat.region(region).raster_spec()
    if spec is None or spec.layout != "per-date":
        raise InputError(catalog, f"region {region!r} has no per-date tiles")
    tiles = sorted(cat.path(spec.path).glob("*.tif"))
    if not tiles:
        raise InputError(cat.path(spec.path), "no .tif tiles in the region's folder")
    return tiles


def write_provider_items(
    catalog: str | Path,
    region: str,
    out: str | Path,
    provider: Provider,
    *,
    base_href: str | None = None,
    boa_offset_applied: bool = False,
    blocksize: int = 256,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write ``region`` of the world at ``catalog`` as ``provider``'s STAC items under ``out``
    and return the path of ``out/items.json``.

    ``blocksize`` is the COGs' internal tile size (a multiple of 16, at least 128 as GDAL's COG
    driver wants); ``progress(stage, done, total)`` is called per date. The same arguments give
    byte-identical files; ``out`` is replaced atomically, and only when cropmeta wrote it (or
    with ``overwrite``). Relative hrefs are relative to ``out`` (the folder of ``items.json``):
    items carry no ``self`` link, so a reader resolves them against the file it read.
    """
    shape = _provider(provider)
    base = _base(base_href)
    if boa_offset_applied and shape is not earth_search:
        raise InputError(provider, "only earth-search removes the offset (boa_offset_applied)")
    if blocksize < 128 or blocksize % 16:
        raise InputError(str(blocksize), "blocksize must be a multiple of 16, at least 128")
    tiles = _tiles(Path(catalog), region)
    claim(out, KIND, inputs=[catalog, tiles[0].parent], overwrite=overwrite)
    features: list[dict] = []
    with atomic_output(out) as tmp:
        (tmp / "reference").mkdir(parents=True)
        mark_folder(tmp, KIND)
        writer = _DateWriter(tmp, shape, base, boa_offset_applied, blocksize)
        for d, path in enumerate(tiles):
            features += writer.write(path, d)
            if progress is not None:
                progress(f"{region}: {path.name}", d + 1, len(tiles))
        collection = {"type": "FeatureCollection", "features": features}
        (tmp / "items.json").write_text(json.dumps(collection, indent=2) + "\n", encoding="utf-8")
    return Path(out) / "items.json"


@dataclass
class _DateWriter:
    """Writes one date's reference tile, COGs, thumbnails and metadata; returns its items."""

    root: Path
    shape: ModuleType
    base: str
    boa_offset_applied: bool
    blocksize: int

    def write(self, path: Path, date_index: int) -> list[dict]:
        with rasterio.open(path) as src:
            data, tags, epsg = _read_tile(src, path)
            day = dt.date.fromisoformat(tags["ACQUISITION_DATE"])
            t, doy = src.transform, day.timetuple().tm_yday
            native = native_date(data, t.c, t.f, doy)
            _write_reference(self.root / "reference" / path.name, src, reference_tile(native, data))
        h, w = native.shape
        lon, _ = _lonlat(epsg, native.x0 + 5.0 * w, native.y0 - 5.0 * h)
        items = []
        for part in parts(date_index, w, epsg, lon):
            rasters = self._rasters(native, part, epsg)
            granule = _granule(native, part, epsg, day, tags, rasters["SCL", 20][0])
            items.append(self._item(granule, rasters, part))
        return items

    def _rasters(self, native: Native, part: Part, epsg: int) -> dict[tuple[str, int], tuple]:
        """Every raster the provider delivers, cut (and maybe warped) to the part."""
        out = {}
        for key in sorted(set(self.shape.RASTERS.values()) | {("SCL", 20)}):
            array = native.window(key, part.col0, part.col1)
            transform = native.transform(key[1], part.col0)
            if part.warped:
                src, dst = f"EPSG:{epsg}", f"EPSG:{part.epsg}"
                array, transform = reproject_to(array, transform, src, dst, key[1], key[0] == "SCL")
            if self.boa_offset_applied and key[0] in NATIVE_RES:
                array = harmonize(array)
            out[key] = (array, Grid(array.shape[1:], transform))
        return out

    def _item(self, granule: Granule, rasters: dict, part: Part) -> dict:
        paths = self.shape.paths(granule)
        crs = f"EPSG:{part.epsg}"
        grids = {}
        for key, product in self.shape.RASTERS.items():
            array, grid = rasters[product]
            categorical = product[0] == "SCL"
            write_cog(
                self.root / paths[key], array, grid.transform, crs, self.blocksize, categorical
            )
            grids[key] = grid
        thumb_key, kind = self.shape.THUMBNAIL
        tci, grid = rasters["TCI", 10]
        _write_thumbnail(self.root / paths[thumb_key], tci, grid, crs, kind)
        for key, content in self.shape.metadata(granule).items():
            target = self.root / paths[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        hrefs = {key: self.base + rel for key, rel in paths.items()}
        return self.shape.item(granule, grids, hrefs, self.boa_offset_applied)


def _read_tile(src: rasterio.DatasetReader, path: Path) -> tuple[np.ndarray, dict, int]:
    """A world tile's pixels, tags and UTM EPSG code; anything else is an InputError."""
    epsg = src.crs.to_epsg() if src.crs else None
    if src.count != len(BANDS) + 1 or src.dtypes[0] != "uint16":
        raise InputError(path, "not a synthetic-world tile (expected 11 uint16 bands B02…SCL)")
    if epsg is None or not 32601 <= epsg <= 32660 or src.res != (10.0, 10.0):
        raise InputError(path, "expected a 10 m grid in a northern UTM zone (EPSG:326xx)")
    tags = src.tags()
    if "ACQUISITION_DATE" not in tags or "SPACECRAFT" not in tags:
        raise InputError(path, "no ACQUISITION_DATE/SPACECRAFT tags: not a synthetic-world tile")
    return src.read(), tags, epsg


def _write_reference(path: Path, src: rasterio.DatasetReader, data: np.ndarray) -> None:
    """A file in the world's per-date layout (same profile, band names, scales and tags)."""
    with rasterio.open(path, "w", **(src.profile | {"predictor": 2})) as dst:
        dst.write(data)
        dst.descriptions = src.descriptions
        dst.scales, dst.offsets = src.scales, src.offsets
        dst.update_tags(**src.tags())
        for b in range(1, src.count + 1):
            dst.update_tags(b, **src.tags(b))


def _lonlat(epsg: int, x: float, y: float) -> tuple[float, float]:
    return Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)


def _granule(
    native: Native, part: Part, epsg: int, day: dt.date, tags: dict, scl: np.ndarray
) -> Granule:
    """The part's identity: footprint (its ground rectangle), MGRS-like tile, statistics."""
    x0, x1 = native.x0 + 10.0 * part.col0, native.x0 + 10.0 * part.col1
    y0, y1 = native.y0, native.y0 - 10.0 * native.shape[0]
    ring = [_lonlat(epsg, x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    centre = _lonlat(epsg, (x0 + x1) / 2, (y0 + y1) / 2)
    east, north = Transformer.from_crs(4326, part.epsg, always_xy=True).transform(*centre)
    if part.index == 1 and not part.warped:
        east += 100_000.0  # the neighbouring 100 km square: a second tile of the same zone
    zone = part.epsg - 32600
    return Granule(
        spacecraft=tags["SPACECRAFT"],
        sensing=sensing_time(day, centre[0]),
        baseline=tags.get("PROCESSING_BASELINE", "05.09"),
        zone=zone,
        latitude_band=latitude_band(centre[1]),
        square=mgrs_square(zone, east, north),
        epsg=part.epsg,
        footprint=[[round(lon, 9), round(lat, 9)] for lon, lat in ring],
        centre=centre,
        stats=scene_stats(scl),
    )


def _write_thumbnail(path: Path, tci: np.ndarray, grid: Grid, crs: str, kind: str) -> None:
    """earth-search's ``thumbnail.jpg`` (≤ 256 px) or PC's ``preview`` PVI COG (320 m)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jpeg":
        step = max(1, -(-max(tci.shape[1:]) // 256))
        Image.fromarray(np.moveaxis(tci[:, ::step, ::step], 0, -1)).save(path, "JPEG", quality=80)
        return
    pvi = np.ascontiguousarray(tci[:, ::32, ::32])
    write_cog(path, pvi, grid.transform @ Affine.scale(32), crs, 128)
