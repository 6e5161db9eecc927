"""What both providers say about one Sentinel-2 granule: bands, MGRS tile, sun, SCL statistics.

A :class:`Granule` is one item's identity (spacecraft, sensing time, MGRS-like tile, footprint)
and the scene statistics ESA's metadata carry, computed from the item's own SCL. The provider
modules (:mod:`cropmeta.synth.earth_search`, :mod:`cropmeta.synth.planetary_computer`) turn it
into their item JSON.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from affine import Affine

#: Per band: centre wavelength and full width at half maximum (µm), as both providers give them.
WAVELENGTHS = {
    "B01": (0.443, 0.027),
    "B02": (0.49, 0.098),
    "B03": (0.56, 0.045),
    "B04": (0.665, 0.038),
    "B05": (0.704, 0.019),
    "B06": (0.74, 0.018),
    "B07": (0.783, 0.028),
    "B08": (0.842, 0.145),
    "B8A": (0.865, 0.033),
    "B09": (0.945, 0.026),
    "B11": (1.61, 0.143),
    "B12": (2.19, 0.242),
}
#: SCL class → the ``s2:*_percentage`` property ESA's metadata report for it.
SCL_PERCENTAGES = {
    1: "s2:saturated_defective_pixel_percentage",
    2: "s2:dark_features_percentage",
    3: "s2:cloud_shadow_percentage",
    4: "s2:vegetation_percentage",
    5: "s2:not_vegetated_percentage",
    6: "s2:water_percentage",
    7: "s2:unclassified_percentage",
    8: "s2:medium_proba_clouds_percentage",
    9: "s2:high_proba_clouds_percentage",
    10: "s2:thin_cirrus_percentage",
    11: "s2:snow_ice_percentage",
}
CLOUD_CLASSES = (8, 9, 10)
LATITUDE_BANDS = "CDEFGHJKLMNPQRSTUVWX"
MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"


@dataclass(frozen=True)
class Grid:
    """Where one raster asset's pixels are: rows × cols and the affine transform."""

    shape: tuple[int, int]
    transform: Affine

    @property
    def bbox(self) -> list[float]:
        t, (h, w) = self.transform, self.shape
        return [t.c, t.f + h * t.e, t.c + w * t.a, t.f]


@dataclass(frozen=True)
class Granule:
    """One item: an MGRS-like tile of one acquisition, and its scene statistics."""

    spacecraft: str  # "Sentinel-2A"
    sensing: dt.datetime  # UTC
    baseline: str  # "05.09"
    zone: int
    latitude_band: str
    square: str  # the 100 km square's two letters
    epsg: int
    footprint: list[list[float]]  # closed ring of [lon, lat]
    centre: tuple[float, float]  # lon, lat
    stats: dict[str, float]  # s2:*_percentage, eo:cloud_cover

    @property
    def tile(self) -> str:
        return f"{self.zone:02d}{self.latitude_band}{self.square}"

    @property
    def sat(self) -> str:
        return "S2" + self.spacecraft[-1]

    @property
    def generated(self) -> dt.datetime:
        """ESA's processing time: a few hours after sensing (fixed, so files are reproducible)."""
        return self.sensing.replace(microsecond=0) + dt.timedelta(hours=3, minutes=27, seconds=14)

    @property
    def relative_orbit(self) -> int:
        return int((self.centre[0] + 180.0) / 360.0 * 143) % 143 + 1

    @property
    def absolute_orbit(self) -> int:
        return int((self.sensing.date() - dt.date(2015, 6, 23)).days * 14.3)

    @property
    def stamp(self) -> str:
        return f"{self.sensing:%Y%m%dT%H%M%S}"

    @property
    def product_uri(self) -> str:
        """ESA's product (SAFE) name."""
        return (
            f"{self.sat}_MSIL2A_{self.stamp}_N{self.baseline.replace('.', '')}"
            f"_R{self.relative_orbit:03d}_T{self.tile}_{self.generated:%Y%m%dT%H%M%S}.SAFE"
        )

    @property
    def granule_id(self) -> str:
        return (
            f"{self.sat}_OPER_MSI_L2A_TL_2APS_{self.generated:%Y%m%dT%H%M%S}"
            f"_A{self.absolute_orbit:06d}_T{self.tile}_N{self.baseline}"
        )

    @property
    def datastrip_id(self) -> str:
        return (
            f"{self.sat}_OPER_MSI_L2A_DS_2APS_{self.generated:%Y%m%dT%H%M%S}"
            f"_S{self.stamp}_N{self.baseline}"
        )

    @property
    def datatake_id(self) -> str:
        return f"G{self.sat}_{self.stamp}_{self.absolute_orbit:06d}_N{self.baseline}"

    @property
    def bbox(self) -> list[float]:
        lons, lats = zip(*self.footprint, strict=True)
        return [min(lons), min(lats), max(lons), max(lats)]

    def sun(self) -> tuple[float, float]:
        """Mean solar (azimuth, elevation) in degrees at 10:30 local solar time."""
        doy = self.sensing.timetuple().tm_yday
        lat = math.radians(self.centre[1])
        decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
        hour = math.radians(-22.5)
        elev = math.asin(
            math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour)
        )
        az = math.atan2(
            math.sin(hour), math.cos(hour) * math.sin(lat) - math.tan(decl) * math.cos(lat)
        )
        return round(math.degrees(az) + 180.0, 6), round(math.degrees(elev), 6)

    def reflectance_conversion_factor(self) -> float:
        """The Earth-Sun distance correction ESA reports (about 0.967 in July, 1.034 in Jan)."""
        doy = self.sensing.timetuple().tm_yday
        d = 1 - 0.01672 * math.cos(2 * math.pi * (doy - 4) / 365.256)
        return round(1 / d**2, 12)


def sensing_time(day: dt.date, lon: float) -> dt.datetime:
    """Sentinel-2 crosses the equator at 10:30 local solar time: the UTC time over ``lon``."""
    seconds = round((10.5 - lon / 15.0) * 3600.0)
    base = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return base + dt.timedelta(seconds=seconds, milliseconds=24)


def stac_datetime(t: dt.datetime) -> str:
    """The providers' form: ``2023-06-28T07:24:41.632000Z``."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mgrs_square(zone: int, easting: float, northing: float) -> str:
    """The two letters of the MGRS 100 km square holding a UTM point (AA lettering)."""
    column = MGRS_COLUMNS[(zone - 1) % 3][(int(easting // 100_000) - 1) % 8]
    row = int(northing // 100_000) % 20
    return column + MGRS_ROWS[(row + 5) % 20 if zone % 2 == 0 else row]


def latitude_band(lat: float) -> str:
    return LATITUDE_BANDS[min(max(int((lat + 80) // 8), 0), 19)]


def scene_stats(scl: np.ndarray) -> dict[str, float]:
    """``s2:*_percentage`` of the item's SCL (classes over valid pixels; no-data over all),
    and ``eo:cloud_cover``, the medium/high cloud and cirrus share, as ESA counts them."""
    counts = np.bincount(scl.ravel(), minlength=12).astype(float)
    valid = max(counts[1:].sum(), 1.0)
    stats = {
        "s2:degraded_msi_data_percentage": 0.0,
        "s2:nodata_pixel_percentage": round(100 * counts[0] / max(counts.sum(), 1.0), 6),
    }
    stats |= {key: round(100 * counts[code] / valid, 6) for code, key in SCL_PERCENTAGES.items()}
    stats["eo:cloud_cover"] = round(100 * counts[list(CLOUD_CLASSES)].sum() / valid, 6)
    return stats


def eo_band(name: str, band: str, common: str | None, description: str) -> dict:
    """One ``eo:bands`` entry as both providers write it: ``name``, the ``common_name`` where
    the band has one, the description and Sentinel-2 ``band``'s wavelengths."""
    centre, fwhm = WAVELENGTHS[band]
    eo: dict = {"name": name} | ({"common_name": common} if common is not None else {})
    return eo | {
        "description": description,
        "center_wavelength": centre,
        "full_width_half_max": fwhm,
    }


#: Titles of the L2A products beside the bands, as both providers write them (the Planetary
#: Computer misspells SCL's: its module keeps that).
PRODUCT_TITLES = {
    "AOT": "Aerosol optical thickness (AOT)",
    "SCL": "Scene classification map (SCL)",
    "TCI": "True color image",
    "WVP": "Water vapour (WVP)",
}


def feature(
    item_id: str, g: Granule, properties: dict, links: list, assets: dict, extensions: list
) -> dict:
    """A ``sentinel-2-l2a`` item's GeoJSON Feature, its fields in the order both providers
    write them."""
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "properties": properties,
        "geometry": {"type": "Polygon", "coordinates": [g.footprint]},
        "links": links,
        "assets": assets,
        "bbox": g.bbox,
        "stac_extensions": extensions,
        "collection": "sentinel-2-l2a",
    }
