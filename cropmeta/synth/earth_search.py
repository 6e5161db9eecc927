"""Items shaped as Element 84's earth-search v1 collection ``sentinel-2-l2a`` writes them.

Modelled on real items (e.g. ``S2A_39QTA_20230628_0_L2A``, stored as test data in
geopython/eodm ``tests/data/test_data.py``):

* asset keys are common names (``blue``, ``nir08``, ``rededge1``, ``scl``, ``visual``…) and
  ``eo:bands[].name`` repeats the key; B05-B07 have common name ``rededge``; one folder per
  item with files named ``B02.tif``, ``SCL.tif``, ``TCI.tif``, ``thumbnail.jpg``…;
* every reflectance asset has ``raster:bands`` scale 0.0001 and offset −0.1, even where
  ``earthsearch:boa_offset_applied`` is true, i.e. where the +1000 DN offset was already
  removed from the pixels (Element84/earth-search#9: the flag is the truth). SCL is uint8
  without scale; AOT and WVP are at 20 m with scale 0.001;
* ``proj:epsg`` (projection extension v1.0.0) and ``mgrs:*``/``grid:code`` per item.

The ``*-jp2`` assets real items also list (the original JPEG 2000 files in another bucket) are
left out: nothing here could serve them.
"""

from __future__ import annotations

import datetime as dt
import json

from cropmeta.synth.granules import (
    PRODUCT_TITLES,
    Granule,
    Grid,
    eo_band,
    feature,
    stac_datetime,
)
from cropmeta.synth.native import NATIVE_RES

NAME = "earth-search"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
COLLECTION = "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a"
LICENSE = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"
#: How long after ESA's processing an item is published (its ``created``/``updated``).
PUBLISHED = dt.timedelta(hours=4, minutes=2, seconds=15)
EXTENSIONS = [
    f"https://stac-extensions.github.io/{name}/schema.json"
    for name in (
        "view/v1.0.0",
        "eo/v1.0.0",
        "grid/v1.0.0",
        "raster/v1.1.0",
        "processing/v1.1.0",
        "projection/v1.0.0",
        "mgrs/v1.0.0",
    )
]
#: Reflectance bands: asset key → (band, common name, description).
BANDS = {
    "blue": ("B02", "blue", "Blue (band 2)"),
    "coastal": ("B01", "coastal", "Coastal aerosol (band 1)"),
    "green": ("B03", "green", "Green (band 3)"),
    "nir": ("B08", "nir", "NIR 1 (band 8)"),
    "nir08": ("B8A", "nir08", "NIR 2 (band 8A)"),
    "nir09": ("B09", "nir09", "NIR 3 (band 9)"),
    "red": ("B04", "red", "Red (band 4)"),
    "rededge1": ("B05", "rededge", "Red edge 1 (band 5)"),
    "rededge2": ("B06", "rededge", "Red edge 2 (band 6)"),
    "rededge3": ("B07", "rededge", "Red edge 3 (band 7)"),
    "swir16": ("B11", "swir16", "SWIR 1 (band 11)"),
    "swir22": ("B12", "swir22", "SWIR 2 (band 12)"),
}
#: Every raster asset: key → (product, resolution in m); ``visual`` is the TCI.
RASTERS = {key: (band, NATIVE_RES[band]) for key, (band, _, _) in BANDS.items()} | {
    "aot": ("AOT", 20),
    "scl": ("SCL", 20),
    "visual": ("TCI", 10),
    "wvp": ("WVP", 20),
}
TITLES = {key: PRODUCT_TITLES[p] for key, (p, _) in sorted(RASTERS.items()) if p in PRODUCT_TITLES}
THUMBNAIL = ("thumbnail", "jpeg")
#: The order of a real item's assets (alphabetical, as the API returns them).
ORDER = sorted([*RASTERS, "granule_metadata", "thumbnail", "tileinfo_metadata"])


def item_id(g: Granule) -> str:
    return f"{g.sat}_{g.tile}_{g.sensing:%Y%m%d}_0_L2A"


def paths(g: Granule) -> dict[str, str]:
    """Asset key → file path relative to the item collection's folder."""
    files = {key: f"{band}.tif" for key, (band, _, _) in BANDS.items()}
    files |= {"aot": "AOT.tif", "scl": "SCL.tif", "visual": "TCI.tif", "wvp": "WVP.tif"}
    files |= {
        "thumbnail": "thumbnail.jpg",
        "granule_metadata": "granule_metadata.xml",
        "tileinfo_metadata": "tileinfo_metadata.json",
    }
    return {key: f"{item_id(g)}/{name}" for key, name in files.items()}


def metadata(g: Granule) -> dict[str, bytes]:
    """The small metadata files a real item links: granule XML and tileinfo JSON."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A'
        '_Tile_Metadata.xsd">\n'
        "  <n1:General_Info>\n"
        f"    <TILE_ID>{g.granule_id}</TILE_ID>\n"
        f"    <SENSING_TIME>{stac_datetime(g.sensing)}</SENSING_TIME>\n"
        "  </n1:General_Info>\n"
        "</n1:Level-2A_Tile_ID>\n"
    )
    info = {
        "path": f"tiles/{g.zone}/{g.latitude_band}/{g.square}/"
        f"{g.sensing.year}/{g.sensing.month}/{g.sensing.day}/0",
        "timestamp": stac_datetime(g.sensing),
        "utmZone": g.zone,
        "latitudeBand": g.latitude_band,
        "gridSquare": g.square,
        "productName": g.product_uri.removesuffix(".SAFE"),
        "cloudyPixelPercentage": g.stats["eo:cloud_cover"],
        "dataCoveragePercentage": round(100 - g.stats["s2:nodata_pixel_percentage"], 6),
    }
    return {
        "granule_metadata": xml.encode(),
        "tileinfo_metadata": (json.dumps(info, indent=2) + "\n").encode(),
    }


def _grid(grid: Grid) -> dict:
    t = grid.transform
    return {
        "proj:shape": list(grid.shape),
        "proj:transform": [_num(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)],
    }


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def _raster_band(res: int, dtype: str = "uint16", **extra: object) -> list[dict]:
    band: dict = {"nodata": 0, "data_type": dtype}
    if dtype == "uint16":
        band["bits_per_sample"] = 15
    return [band | {"spatial_resolution": res} | extra]


def _asset(key: str, grid: Grid | None, href: str) -> dict:
    """One asset as earth-search writes it (roles, titles, eo/raster/proj fields)."""
    if grid is None:  # thumbnail and metadata files
        if key == "thumbnail":
            return {"href": href, "type": "image/jpeg", "title": "Thumbnail image", "roles": [key]}
        kind = "application/xml" if key == "granule_metadata" else "application/json"
        return {"href": href, "type": kind, "roles": ["metadata"]}
    res = round(grid.transform.a)
    asset: dict = {"href": href, "type": COG}
    if key in BANDS:
        asset["title"] = f"{BANDS[key][2]} - {res}m"
        asset["eo:bands"] = [_eo_band(key)]
        asset["gsd"] = res
    else:
        asset["title"] = TITLES[key]
    if key == "visual":
        asset["eo:bands"] = [_eo_band(k) for k in ("red", "green", "blue")]
    asset |= _grid(grid)
    if key in BANDS:
        asset["raster:bands"] = _raster_band(res, scale=0.0001, offset=-0.1)
    elif key in ("aot", "wvp"):
        unit = {"unit": "cm"} if key == "wvp" else {}
        asset["raster:bands"] = _raster_band(res, **unit, scale=0.001, offset=0)
    elif key == "scl":
        asset["raster:bands"] = _raster_band(res, "uint8")
    asset["roles"] = ["visual"] if key == "visual" else ["data", "reflectance"]
    return asset


def _eo_band(key: str) -> dict:
    band, common, description = BANDS[key]
    return eo_band(key, band, common, description)


def item(
    g: Granule, grids: dict[str, Grid], hrefs: dict[str, str], boa_offset_applied: bool
) -> dict:
    """The item's JSON: properties in the order earth-search writes them."""
    azimuth, elevation = g.sun()
    stamp = stac_datetime(g.generated + PUBLISHED)
    s3 = (
        f"s3://sentinel-cogs/sentinel-s2-l2a-cogs/{g.zone}/{g.latitude_band}/{g.square}/"
        f"{g.sensing.year}/{g.sensing.month}/{item_id(g)}"
    )
    properties = {
        "created": stamp,
        "platform": g.spacecraft.lower(),
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": g.stats["eo:cloud_cover"],
        "proj:epsg": g.epsg,
        "mgrs:utm_zone": g.zone,
        "mgrs:latitude_band": g.latitude_band,
        "mgrs:grid_square": g.square,
        "grid:code": f"MGRS-{g.tile}",
        "view:sun_azimuth": azimuth,
        "view:sun_elevation": elevation,
        **{k: v for k, v in g.stats.items() if k != "eo:cloud_cover"},
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": g.baseline,
        "s2:product_uri": g.product_uri,
        "s2:generation_time": stac_datetime(g.generated),
        "s2:datatake_id": g.datatake_id,
        "s2:datatake_type": "INS-NOBS",
        "s2:datastrip_id": g.datastrip_id,
        "s2:granule_id": g.granule_id,
        "s2:reflectance_conversion_factor": g.reflectance_conversion_factor(),
        "datetime": stac_datetime(g.sensing),
        "s2:sequence": "0",
        "earthsearch:s3_path": s3,
        "earthsearch:payload_id": f"roda-sentinel2/workflow-sentinel2-to-stac/{item_id(g)}",
        "earthsearch:boa_offset_applied": boa_offset_applied,
        "processing:software": {"sentinel2-to-stac": "0.1.0"},
        "updated": stamp,
    }
    links = [
        {"rel": "license", "href": LICENSE},
        {"rel": "collection", "href": COLLECTION, "type": "application/json"},
    ]
    assets = {key: _asset(key, grids.get(key), hrefs[key]) for key in ORDER}
    return feature(item_id(g), g, properties, links, assets, EXTENSIONS)
