"""Items from a STAC API's item search, the way users find imagery (earth-search, the Planetary
Computer): ``--tiles "https://earth-search.aws.element84.com/v1/search?collections=sentinel-2-l2a&datetime=2023-03-01/2023-10-31"``.

The search URL names the collections, dates and any other `STAC API item search
<https://github.com/radiantearth/stac-api-spec/tree/main/item-search>`_ parameter; where it
gives no ``bbox`` the labels' extent (or the map's area) is searched, so the same URL serves
every region. pystac-client runs the search and follows the result's ``next`` links through
every page; what it returns is read like a saved ItemCollection.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse, urlunparse

import pystac
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from cropmeta.errors import InputError

#: Item-search parameters a search URL may carry (comma-separated lists as the GET form has them).
PARAMETERS = ("collections", "datetime", "bbox", "ids", "limit", "max_items", "query", "sortby")
#: Items a search returns at most unless its URL says ``max_items``.
MAX_ITEMS = 5000


def is_search(source: str) -> bool:
    """Whether ``source`` is a STAC API item-search URL (its path ends in ``/search``)."""
    parts = urlparse(source)
    return parts.scheme in ("http", "https") and parts.path.rstrip("/").endswith("/search")


def search_items(url: str, extent: tuple[tuple[float, ...], CRS] | None) -> list[pystac.Item]:
    """The items the item search ``url`` finds (every page), over ``extent`` (bounds, CRS) where
    the URL gives no ``bbox``."""
    from pystac_client import ItemSearch

    parts = urlparse(url)
    query = {k: v[-1] if k != "query" else v for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - set(PARAMETERS))
    if unknown:
        known = ", ".join(PARAMETERS)
        raise InputError(url, f"unknown search parameter {unknown[0]!r} (known: {known})")
    try:
        limit, most = int(query.get("limit", 100)), int(query.get("max_items", MAX_ITEMS))
        bbox = [float(v) for v in query.pop("bbox").split(",")] if "bbox" in query else None
    except ValueError:
        raise InputError(url, "bbox, limit and max_items must be numbers") from None
    if bbox is not None and len(bbox) != 4:
        raise InputError(url, "bbox must be west,south,east,north")
    if bbox is None and extent is not None:
        bounds, crs = extent
        bbox = list(transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21))
    if bbox is None:
        raise InputError(url, "an item search needs an area: bbox=west,south,east,north in the URL")
    try:
        search = ItemSearch(
            urlunparse(parts._replace(query="")),
            method="GET",
            bbox=bbox,
            collections=query.get("collections"),
            datetime=query.get("datetime"),
            ids=query.get("ids"),
            query=query.get("query"),
            sortby=query.get("sortby"),
            limit=limit,
            max_items=most,
        )
        return list(search.items())
    except Exception as exc:  # pystac-client raises APIError, OSError, even a bare Exception
        problem = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputError(url, f"the item search failed ({problem[:200]})") from None
