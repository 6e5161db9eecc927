"""The ``stac`` layout: a local STAC ItemCollection, Item, Catalog or Collection, read with pystac.

Each item is one acquisition (its ``datetime``, or ``start_datetime`` for a range) and carries
one asset per band. An asset's band is named by its key; an asset whose ``eo:bands`` (or STAC
1.1 ``bands``) lists one band is also found under that band's ``name``, and one listing several
bands contributes each of them, by name, as bands 1..n of the file. Thumbnails, overviews and
metadata assets are skipped. Hrefs must be local: absolute paths, ``file://`` URLs, or paths
relative to the item's own JSON (or, for an ItemCollection, to the collection file).

The stack's :attr:`~.BandFileStack.source_files` are the STAC file, the items' own JSON files
(a Catalog's) and the asset files: what a map's resume check signs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlparse

import pystac

from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError
from cropmeta.ingest.sources.geotiff import BandFileStack, BandRecord, assemble

_SKIP_ROLES = {"thumbnail", "overview", "metadata", "visual"}
_RASTER_ENDINGS = (".tif", ".tiff", ".jp2", ".vrt", ".img")


def _items(path: Path) -> list[pystac.Item]:
    """The items of a local STAC JSON file (ItemCollection, Item, Catalog or Collection)."""
    try:
        kind = json.loads(path.read_text(encoding="utf-8")).get("type")
        if kind == "FeatureCollection":
            return list(pystac.ItemCollection.from_file(str(path)).items)
        obj = pystac.read_file(str(path))
        if isinstance(obj, pystac.Item):
            return [obj]
        if isinstance(obj, pystac.Catalog):
            return list(obj.get_items(recursive=True))
    except FileNotFoundError:
        raise InputError(path, "STAC file not found") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pystac.STACError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(path, f"not a readable STAC JSON ({problem})") from None
    raise InputError(path, "not a STAC ItemCollection, Item, Catalog or Collection")


def _day(item: pystac.Item, path: Path) -> date:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(path, f"item {item.id!r} has no datetime")
    return when.date()


def _local(href: str, item: pystac.Item, path: Path) -> Path:
    """An asset href as a local path; relative ones against the item's (or the file's) folder."""
    if href.startswith("file:"):
        href = unquote(urlparse(href).path)
    elif "://" in href:
        raise InputError(path, f"item {item.id!r}: asset {href!r} is not a local file")
    self_href = item.get_self_href()
    base = Path(self_href).parent if self_href and "://" not in self_href else path.parent
    local = Path(href)
    return local if local.is_absolute() else (base / local).resolve()


def _is_band_asset(asset: pystac.Asset) -> bool:
    if _SKIP_ROLES & set(asset.roles or []):
        return False
    if asset.media_type:
        return asset.media_type.startswith("image/") and "png" not in asset.media_type
    return asset.href.lower().endswith(_RASTER_ENDINGS)


def _band_names(key: str, asset: pystac.Asset) -> tuple[list[tuple[str, int]], list[str]]:
    """An asset's bands as (name, 1-based band number), and other names of a single band.

    A multi-band asset's bands are named by ``eo:bands``; a single-band asset's band by its
    key, with the ``eo:bands`` name as an alias that a spec's ``bands`` may use.
    """
    listed = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    names = [b.get("name") for b in listed if isinstance(b, dict)]
    if len(names) > 1:
        return [(n or f"{key}_{j + 1}", j + 1) for j, n in enumerate(names)], []
    return [(key, 1)], [n for n in names if n and n != key]


def open_stac(path: Path, spec: RasterSpec) -> BandFileStack:
    """One stack from the STAC items: a date per item, a band per (named) asset band."""
    if not path.is_file():
        raise InputError(path, "STAC file not found")
    items = _items(path)
    if not items:
        raise InputError(path, "the STAC file lists no items")
    records: list[BandRecord] = []
    first: dict[date, str] = {}
    for item in items:
        day = _day(item, path)
        other = first.setdefault(day, item.id)
        if other != item.id:
            raise InputError(path, f"items {other!r} and {item.id!r} share the date {day}")
        bands: dict[str, BandRecord] = {}
        aliases: dict[str, BandRecord] = {}
        for key, asset in item.assets.items():
            if not _is_band_asset(asset):
                continue
            file = _local(asset.href, item, path)
            own, other_names = _band_names(key, asset)
            for name, band_no in own:
                bands.setdefault(name, BandRecord(day, name, file, band_no))
            for name in other_names:
                aliases.setdefault(name, BandRecord(day, name, file, 1))
        for name in [*(spec.bands or []), spec.quality_band]:  # a spec may use eo:bands names
            if name not in bands and name in aliases:
                bands[name] = aliases[name]
        records.extend(bands.values())
    stack = assemble(records, path, spec)
    return replace(stack, metadata=tuple(dict.fromkeys([path.resolve(), *_item_files(items)])))


def _item_files(items: list[pystac.Item]) -> list[Path]:
    """The local JSON files the items were read from (a Catalog's items have their own)."""
    files = []
    for item in items:
        href = item.get_self_href()
        if href and "://" not in href and Path(href).is_file():
            files.append(Path(href).resolve())
    return files
