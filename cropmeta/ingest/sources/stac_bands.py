"""Which band each asset of a STAC item holds, and how its stored values become reflectance.

Providers name the same Sentinel-2 band differently: Element84's earth-search by common name
(``red``, ``nir08``, ``scl``), Microsoft's Planetary Computer by band number (``B04``, ``B8A``,
``SCL``). Landsat Collection 2 Level-2 items use common names too (``red``, ``nir08``,
``qa_pixel``). :func:`item_bands` resolves an item's assets, case-insensitively, to one
*canonical* name per band: the Sentinel-2 band name (``B04``), for Landsat the Sentinel-2 band
of the same wavelengths (Landsat's ``nir08``, 0.85–0.88 µm, is Sentinel-2's ``B8A``), so one
preparation serves both sensors, as NASA's Harmonized Landsat Sentinel-2 pairs them. The
asset each canonical band came from is recorded (:attr:`AssetBand.key`).

An asset whose key names no known band is still offered under its own key (or its
``eo:bands`` name) for a catalog that asks for it by name; it is not one of the bands used by
default. Two assets of one item that both resolve to a band are an error, except the JPEG2000
copy that earth-search keeps beside each Cloud-Optimized GeoTIFF (``red-jp2`` beside ``red``):
the COG is read.

Stored values → reflectance (:func:`scaling`), applied exactly once:

* for earth-search items whose ``earthsearch:boa_offset_applied`` is true, DN × 0.0001: their
  pixels no longer hold the +1000 of processing baseline 04.00, although their ``raster:bands``
  still say offset −0.1 (the property is right, the metadata wrong: Element84/earth-search#9);
* an asset's ``raster:bands`` ``scale``/``offset``/``nodata`` when it gives them (earth-search's
  Sentinel-2 items carry ``offset`` −0.1: the baseline offset is already in it);
* else, for Sentinel-2 L2A, DN × 0.0001, minus 0.1 where ``s2:processing_baseline`` is 04.00 or
  later (products from 25 January 2022, which add 1000 to every DN: BOA_ADD_OFFSET);
* else, for Landsat Collection 2 Level-2 surface reflectance, DN × 0.0000275 − 0.2 (USGS);
* else the values as stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import pystac

#: earth-search's (and the STAC common names') Sentinel-2 keys, and the bands they hold.
_S2_KEYS = "coastal blue green red rededge1 rededge2 rededge3 nir nir08 nir09 cirrus swir16 swir22"
_S2_BANDS = "B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12"
#: Sentinel-2 keys → canonical band: earth-search's, and the Planetary Computer's (the band
#: names themselves, any case).
SENTINEL2_KEYS = {
    **dict(zip(_S2_KEYS.split(), _S2_BANDS.split(), strict=True)),
    "scl": "SCL",
    **{f"b{n:02d}": f"B{n:02d}" for n in range(1, 13)},
    "b8a": "B8A",
}
#: Landsat Collection 2 Level-2 keys (earth-search, Planetary Computer, USGS) → canonical band.
LANDSAT_KEYS = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir08": "B8A",
    "swir16": "B11",
    "swir22": "B12",
    "qa_pixel": "QA_PIXEL",
    **{f"sr_b{n}": b for n, b in enumerate(("B01", "B02", "B03", "B04", "B8A", "B11", "B12"), 1)},
}
#: Bands that hold classes or bit flags: resampled by nearest neighbour (or mode), never mixed.
CLASS_BANDS = frozenset({"SCL", "QA_PIXEL"})
#: The bands read by default, in this order, where the items hold them: Sentinel-2's ten
#: land bands at 10 and 20 m (Landsat's six that match them) and the quality band. The 60 m
#: atmospheric bands (B01, B09, B10) are read only when asked for.
DEFAULT_BANDS = (
    *("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
    *("SCL", "QA_PIXEL"),
)
#: Asset roles that never hold a band to read.
SKIP_ROLES = frozenset({"thumbnail", "overview", "metadata", "visual"})
#: Asset keys of 8-bit true-colour renderings and previews (the Planetary Computer's
#: ``visual`` has role "data" and lists B04/B03/B02 in its ``eo:bands``): not reflectance.
SKIP_KEYS = frozenset({"visual", "tci", "preview", "rendered_preview", "thumbnail", "overview"})
RASTER_ENDINGS = (".tif", ".tiff", ".jp2", ".vrt", ".img")
#: Sentinel-2 L2A DN scale, and the offset of processing baseline 04.00 and later.
S2_SCALE, S2_BASELINE_OFFSET = 1e-4, -0.1
BASELINE_04_FROM = "2022-01-25"
#: Landsat Collection 2 Level-2 surface reflectance scale and offset (USGS).
LANDSAT_SCALE, LANDSAT_OFFSET = 2.75e-5, -0.2


@dataclass(frozen=True)
class AssetBand:
    """One band of one item: the asset (``key``, ``href``, 1-based ``band_no``) that holds it,
    and how its values become reflectance (``scale``, ``offset``, ``nodata``; None: unknown)."""

    band: str
    key: str
    href: str
    band_no: int
    scale: float | None
    offset: float | None
    nodata: float | None
    gsd: float | None
    known: bool  # a band of the provider tables, used by default


class AmbiguousAssets(ValueError):
    """Two assets of one item resolve to the same band."""


def sensor(item: pystac.Item) -> str:
    """'sentinel-2', 'landsat' or '' (unknown), from the item's platform, constellation,
    collection or provider-specific properties."""
    props = item.properties
    words = " ".join(
        str(props.get(k, "")) for k in ("platform", "constellation", "instruments")
    ).lower()
    words += " " + (item.collection_id or "").lower()
    if "sentinel-2" in words or "sentinel2" in words or any(k.startswith("s2:") for k in props):
        return "sentinel-2"
    if "landsat" in words or any(k.startswith("landsat:") for k in props):
        return "landsat"
    return ""


def _is_band_asset(key: str, asset: pystac.Asset) -> bool:
    if SKIP_ROLES & set(asset.roles or []) or key.casefold().removesuffix("-jp2") in SKIP_KEYS:
        return False
    if asset.media_type:
        return asset.media_type.startswith("image/") and "png" not in asset.media_type
    return asset.href.lower().split("?")[0].endswith(RASTER_ENDINGS)


def _listed(asset: pystac.Asset, name: str) -> list[dict]:
    bands = asset.extra_fields.get(name) or []
    return [b for b in bands if isinstance(b, dict)] if isinstance(bands, list) else []


def _canonical(name: str | None, table: dict[str, str]) -> str | None:
    return table.get(name.casefold()) if name else None


def _baseline_offset(item: pystac.Item) -> float:
    """Sentinel-2 L2A: −0.1 for processing baseline 04.00 and later, else 0."""
    baseline = str(item.properties.get("s2:processing_baseline") or "")
    try:
        return S2_BASELINE_OFFSET if float(baseline) >= 4.0 else 0.0
    except ValueError:  # no baseline recorded: products from 25 January 2022 carry the offset
        day = item.datetime or item.common_metadata.start_datetime
        late = day is not None and day.date().isoformat() >= BASELINE_04_FROM
        return S2_BASELINE_OFFSET if late else 0.0


def scaling(
    item: pystac.Item, band: str, raster: dict, kind: str
) -> tuple[float | None, float | None, float | None]:
    """(scale, offset, nodata) of ``band`` of ``item`` from its ``raster:bands`` entry
    ``raster``, else the sensor's (see the module docstring); class bands are never scaled."""
    nodata = raster.get("nodata")
    nodata = None if nodata is None else float(nodata)
    if band in CLASS_BANDS:
        return None, None, nodata if nodata is not None else (1.0 if band == "QA_PIXEL" else 0.0)
    scale, offset = raster.get("scale"), raster.get("offset")
    if kind == "sentinel-2" and item.properties.get("earthsearch:boa_offset_applied") is True:
        # earth-search removed the +1000 DN from these pixels but left offset −0.1 in
        # raster:bands; the property is what holds (Element84/earth-search#9)
        return float(scale or S2_SCALE), 0.0, 0.0 if nodata is None else nodata
    if scale is not None or offset is not None:
        return float(scale if scale is not None else 1.0), float(offset or 0.0), nodata
    if kind == "sentinel-2":
        return S2_SCALE, _baseline_offset(item), 0.0 if nodata is None else nodata
    if kind == "landsat":
        return LANDSAT_SCALE, LANDSAT_OFFSET, 0.0 if nodata is None else nodata
    return None, None, nodata


def item_bands(item: pystac.Item) -> dict[str, AssetBand]:
    """Every band of ``item``, by canonical name (see the module docstring).

    Raises :class:`AmbiguousAssets` when two assets hold the same band.
    """
    kind = sensor(item)
    table = LANDSAT_KEYS if kind == "landsat" else SENTINEL2_KEYS
    found: dict[str, AssetBand] = {}
    jp2_copies: dict[str, AssetBand] = {}
    for key, asset in item.assets.items():
        if not _is_band_asset(key, asset):
            continue
        eo = _listed(asset, "eo:bands") or _listed(asset, "bands")
        raster = _listed(asset, "raster:bands") or _listed(asset, "bands")
        count = max(len(eo), len(raster), 1)
        for j in range(count):
            entry = eo[j] if j < len(eo) else {}
            if count == 1:
                band = _canonical(key.removesuffix("-jp2"), table)
                band = band or _canonical(entry.get("common_name"), table)
                band = band or _canonical(entry.get("name"), table)
                known = band is not None
                band = band or entry.get("name") or key
            else:
                band = _canonical(entry.get("name"), table) or _canonical(
                    entry.get("common_name"), table
                )
                known = band is not None
                band = band or entry.get("name") or f"{key}.{j + 1}"
            gsd = asset.extra_fields.get("gsd") or item.properties.get("gsd")
            meta = raster[j] if j < len(raster) else {}
            scale, offset, nodata = scaling(item, band, meta, kind if known else "")
            record = AssetBand(
                band, key, asset.href, j + 1, scale, offset, nodata,
                meta.get("spatial_resolution") or gsd, known,
            )  # fmt: skip
            copy = key.casefold().endswith("-jp2") or (asset.media_type or "").endswith("jp2")
            if copy:
                jp2_copies.setdefault(band, record)
                continue
            if band in found:
                raise AmbiguousAssets(
                    f"item {item.id!r}: assets {found[band].key!r} and {key!r} both hold "
                    f"band {band}"
                )
            found[band] = record
    for band, record in jp2_copies.items():  # a JPEG2000 copy only where no COG holds the band
        found.setdefault(band, record)
    return found
