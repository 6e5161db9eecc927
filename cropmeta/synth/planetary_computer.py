"""Items shaped as Microsoft Planetary Computer's collection ``sentinel-2-l2a`` writes them.

Modelled on a real item (``S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531``, stored
as test data in opendatacube/odc-stac ``tests/data/``) and PC's baseline-change notebook
(microsoft/PlanetaryComputerExamples ``datasets/sentinel-2-l2a/baseline-change.ipynb``):

* asset keys are ESA band names (``B01``…``B12``, ``B8A``, ``SCL``, ``AOT``, ``WVP``) plus
  ``visual`` (TCI), ``preview`` (the PVI quick-look, a COG) and the SAFE's metadata files; the
  files keep the SAFE layout (``<product>.SAFE/GRANULE/…/IMG_DATA/R20m/T33UUU_…_B05_20m.tif``);
* **no** ``raster:bands``: neither scale nor offset nor nodata is in the item. DNs keep ESA's
  +1000 offset from processing baseline 04.00 on, so a reader must itself compute
  reflectance = (DN − 1000) / 10000 where ``s2:processing_baseline`` ≥ "04.00" (the
  ``product-metadata`` XML lists ``BOA_ADD_OFFSET`` per band); nodata is 0 by convention;
* ``eo:bands`` names are band ids (B8A's common name is ``rededge``, B09 has none); ``gsd``,
  ``proj:bbox``/``proj:shape``/``proj:transform`` per asset; ``proj:epsg`` and
  ``s2:mgrs_tile`` (no leading "T") per item.

The ``tilejson`` and ``rendered_preview`` assets real items carry (PC's tiler API) are left
out: they are web services, not files.
"""

from __future__ import annotations

from cropmeta.synth.granules import (
    PRODUCT_TITLES,
    Granule,
    Grid,
    eo_band,
    feature,
    stac_datetime,
)
from cropmeta.synth.native import NATIVE_RES

NAME = "planetary-computer"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
API = "https://planetarycomputer.microsoft.com/api/stac/v1"
LICENSE = "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"
EXTENSIONS = [
    f"https://stac-extensions.github.io/{name}/v1.0.0/schema.json"
    for name in ("eo", "sat", "projection")
]
#: Band → (common name or None, description).
BANDS = {
    "B01": ("coastal", "Band 1 - Coastal aerosol"),
    "B02": ("blue", "Band 2 - Blue"),
    "B03": ("green", "Band 3 - Green"),
    "B04": ("red", "Band 4 - Red"),
    "B05": ("rededge", "Band 5 - Vegetation red edge 1"),
    "B06": ("rededge", "Band 6 - Vegetation red edge 2"),
    "B07": ("rededge", "Band 7 - Vegetation red edge 3"),
    "B08": ("nir", "Band 8 - NIR"),
    "B09": (None, "Band 9 - Water vapor"),
    "B11": ("swir16", "Band 11 - SWIR (1.6)"),
    "B12": ("swir22", "Band 12 - SWIR (2.2)"),
    "B8A": ("rededge", "Band 8A - Vegetation red edge 4"),
}
RASTERS = {band: (band, NATIVE_RES[band]) for band in BANDS} | {
    "AOT": ("AOT", 10),
    "SCL": ("SCL", 20),
    "WVP": ("WVP", 10),
    "visual": ("TCI", 10),
}
TITLES = {
    "AOT": PRODUCT_TITLES["AOT"],
    "SCL": "Scene classfication map (SCL)",  # sic: PC's title
    "WVP": PRODUCT_TITLES["WVP"],
    "visual": PRODUCT_TITLES["TCI"],
    "preview": "Thumbnail",
    "safe-manifest": "SAFE manifest",
    "granule-metadata": "Granule metadata",
    "inspire-metadata": "INSPIRE metadata",
    "product-metadata": "Product metadata",
    "datastrip-metadata": "Datastrip metadata",
}
THUMBNAIL = ("preview", "cog")
ORDER = ["AOT", *BANDS, "SCL", "WVP", "visual", "preview", *list(TITLES)[5:]]


def item_id(g: Granule) -> str:
    return f"{g.sat}_MSIL2A_{g.stamp}_R{g.relative_orbit:03d}_T{g.tile}_{g.generated:%Y%m%dT%H%M%S}"


def paths(g: Granule) -> dict[str, str]:
    """Asset key → file path relative to the item collection's folder (the blob layout)."""
    t = g.sensing
    safe = f"{g.zone:02d}/{g.latitude_band}/{g.square}/{t:%Y/%m/%d}/{g.product_uri}"
    granule = f"{safe}/GRANULE/L2A_T{g.tile}_A{g.absolute_orbit:06d}_{g.stamp}"
    name = f"T{g.tile}_{g.stamp}"
    out = {}
    for key, (product, res) in RASTERS.items():
        product = "TCI" if key == "visual" else product
        out[key] = f"{granule}/IMG_DATA/R{res}m/{name}_{product}_{res}m.tif"
    datastrip = f"DS_2APS_{g.generated:%Y%m%dT%H%M%S}_S{g.stamp}"
    return out | {
        "preview": f"{granule}/QI_DATA/{name}_PVI.tif",
        "safe-manifest": f"{safe}/manifest.safe",
        "granule-metadata": f"{granule}/MTD_TL.xml",
        "inspire-metadata": f"{safe}/INSPIRE.xml",
        "product-metadata": f"{safe}/MTD_MSIL2A.xml",
        "datastrip-metadata": f"{safe}/DATASTRIP/{datastrip}/MTD_DS.xml",
    }


def _xml(root: str, body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>\n{body}</{root}>\n'.encode()


def metadata(g: Granule) -> dict[str, bytes]:
    """Small stand-ins of the SAFE's metadata files; the product metadata carries the
    quantification value and ``BOA_ADD_OFFSET`` per band, as ESA's ``MTD_MSIL2A.xml`` does."""
    offsets = "".join(
        f'      <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>\n' for i in range(13)
    )
    product = (
        "  <General_Info>\n    <Product_Info>\n"
        f"      <PRODUCT_URI>{g.product_uri}</PRODUCT_URI>\n"
        f"      <PROCESSING_BASELINE>{g.baseline}</PROCESSING_BASELINE>\n"
        "    </Product_Info>\n    <Product_Image_Characteristics>\n"
        "      <QUANTIFICATION_VALUES_LIST>\n"
        '        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>\n'
        "      </QUANTIFICATION_VALUES_LIST>\n      <BOA_ADD_OFFSET_VALUES_LIST>\n"
        f"{offsets}      </BOA_ADD_OFFSET_VALUES_LIST>\n"
        "    </Product_Image_Characteristics>\n  </General_Info>\n"
    )
    sensing = f"  <SENSING_TIME>{stac_datetime(g.sensing)}</SENSING_TIME>\n"
    return {
        "safe-manifest": _xml("xfdu:XFDU", f"  <PRODUCT>{g.product_uri}</PRODUCT>\n"),
        "granule-metadata": _xml("n1:Level-2A_Tile_ID", f"  <TILE_ID>{g.granule_id}</TILE_ID>\n"),
        "inspire-metadata": _xml("gmd:MD_Metadata", sensing),
        "product-metadata": _xml("n1:Level-2A_User_Product", product),
        "datastrip-metadata": _xml("n1:Level-2A_DataStrip_ID", sensing),
    }


def _asset(key: str, grid: Grid | None, href: str) -> dict:
    """One asset as PC writes it: no raster:bands, proj:bbox beside proj:shape/transform."""
    asset: dict = {"href": href}
    if grid is None:  # preview and metadata
        asset["type"] = COG if key == "preview" else "application/xml"
        asset["title"] = TITLES[key]
        asset["roles"] = ["thumbnail"] if key == "preview" else ["metadata"]
        return asset
    res = round(grid.transform.a)
    asset["type"] = COG
    if key in BANDS:
        asset["title"] = f"{BANDS[key][1]} - {res}m"
        asset["gsd"] = res
        asset["eo:bands"] = [_eo_band(key)]
    else:
        asset["title"] = TITLES[key]
        asset["gsd"] = float(res)
    if key == "visual":
        asset["eo:bands"] = [_eo_band(b) for b in ("B04", "B03", "B02")]
    t = grid.transform
    asset["proj:bbox"] = [float(v) for v in grid.bbox]
    asset["proj:shape"] = list(grid.shape)
    asset["proj:transform"] = [float(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)]
    asset["roles"] = ["data"]
    return asset


def _eo_band(band: str) -> dict:
    common, description = BANDS[band]
    return eo_band(band, band, common, description)


def item(
    g: Granule, grids: dict[str, Grid], hrefs: dict[str, str], boa_offset_applied: bool
) -> dict:
    """The item's JSON: properties in the order PC writes them (``boa_offset_applied`` must
    be False: PC never removes the offset)."""
    if boa_offset_applied:
        raise ValueError("Planetary Computer items keep the baseline-04.00 offset in the pixels")
    azimuth, elevation = g.sun()
    stats = g.stats
    properties = {
        "datetime": stac_datetime(g.sensing),
        "platform": g.spacecraft,
        "proj:epsg": g.epsg,
        "instruments": ["msi"],
        "s2:mgrs_tile": g.tile,
        "constellation": "Sentinel 2",
        "s2:granule_id": g.granule_id,
        "eo:cloud_cover": stats["eo:cloud_cover"],
        "s2:datatake_id": g.datatake_id,
        "s2:product_uri": g.product_uri,
        "s2:datastrip_id": g.datastrip_id,
        "s2:product_type": "S2MSI2A",
        "sat:orbit_state": "descending",
        "s2:datatake_type": "INS-NOBS",
        "s2:generation_time": stac_datetime(g.generated).replace(".000000Z", ".000Z"),
        "sat:relative_orbit": g.relative_orbit,
        "s2:water_percentage": stats["s2:water_percentage"],
        "s2:mean_solar_zenith": round(90.0 - elevation, 6),
        "s2:mean_solar_azimuth": azimuth,
        "s2:processing_baseline": g.baseline,
        **{k: v for k, v in stats.items() if k not in ("eo:cloud_cover", "s2:water_percentage")},
        "s2:reflectance_conversion_factor": g.reflectance_conversion_factor(),
    }
    links = [
        {
            "rel": "collection",
            "href": f"{API}/collections/sentinel-2-l2a",
            "type": "application/json",
        },
        {"rel": "license", "href": LICENSE},
    ]
    assets = {key: _asset(key, grids.get(key), hrefs[key]) for key in ORDER}
    return feature(item_id(g), g, properties, links, assets, EXTENSIONS)
