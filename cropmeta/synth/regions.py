"""Built-in regions of the synthetic world and their acquisition calendars.

Each region differs in the ways real regions do — latitude (phenology offset), climate
(season length, vigour, cloudiness, snow), soil colour, field sizes, layout angle and crop mix —
so that transfer from the sources to the targets is possible but not trivial.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pyproj import Transformer

#: Season of the synthetic world: acquisitions from 1 Feb to 30 Nov 2023.
YEAR = 2023
SEASON_DOY = (32, 334)
REVISIT_DAYS = 5


@dataclass(frozen=True)
class RegionSpec:
    """Everything that makes one synthetic region look like itself."""

    name: str
    title: str
    country: str
    language: str
    role: str  # "source" or "target"
    utm_zone: int
    lat: float
    lon: float
    label_column: str
    class_freq: dict[int, float]  # shared crop code -> relative frequency
    tile_px: int  # demo tile size (px)
    field_ha: float  # median field size (ha)
    field_ha_range: tuple[float, float]
    road_spacing_px: tuple[float, float]
    angle_deg: float
    landcover_p: tuple[float, float, float]  # probability of a block being forest, village, water
    unlabelled_p: float  # share of farm parcels that are not in the labels
    shift_days: float  # phenology delay of all crops (cold/north > 0)
    summer_shift_days: float  # extra delay of summer crops (hot summers < 0)
    stretch: float  # season-length stretch (>1 longer)
    vigour: float  # canopy amplitude factor (drought < 1)
    soil_brightness: float
    soil_redness: float
    noise: float  # per-pixel noise (reflectance units)
    p_clear: float  # probability an acquisition is cloud-free
    snow_p: float  # probability of snow on a Feb-Mar acquisition
    keep: float  # share of the nominal 5-day acquisitions that survive
    silage_p: float = 0.2  # share of maize cut green for silage (Aug/early Sep)
    catch_p: float = 0.2  # share of cereal/rapeseed fields with a catch crop after harvest
    early_potato_p: float = 0.3  # share of early potato varieties
    grazed_p: float = 0.3  # share of grassland grazed rather than mown

    @property
    def epsg(self) -> int:
        return 32600 + self.utm_zone

    def origin(self, height: int, width: int) -> tuple[float, float]:
        """Upper-left UTM corner (m) of a tile of this size centred on the region."""
        to_utm = Transformer.from_crs(4326, self.epsg, always_xy=True)
        x, y = to_utm.transform(self.lon, self.lat)
        return round(x / 10) * 10 - width * 5.0, round(y / 10) * 10 + height * 5.0


# Shared codes: 1 maize, 2 winter wheat, 3 winter barley, 4 winter rapeseed, 5 sunflower,
# 6 soybean, 7 sugar beet, 8 potato, 9 grassland.
REGIONS: list[RegionSpec] = [
    RegionSpec(
        name="brandenburg",
        title="Brandenburg",
        country="DE",
        language="de",
        role="source",
        utm_zone=33,
        lat=52.45,
        lon=13.05,
        label_column="kultur",
        class_freq={1: 0.18, 2: 0.21, 3: 0.10, 4: 0.14, 5: 0.02, 7: 0.04, 8: 0.05, 9: 0.26},
        tile_px=740,
        field_ha=1.3,
        field_ha_range=(0.3, 6.0),
        road_spacing_px=(70, 190),
        angle_deg=12.0,
        landcover_p=(0.10, 0.04, 0.02),
        unlabelled_p=0.04,
        shift_days=8.0,
        summer_shift_days=0.0,
        stretch=0.95,
        vigour=0.95,
        soil_brightness=1.15,
        soil_redness=0.15,
        noise=0.006,
        p_clear=0.55,
        snow_p=0.35,
        keep=0.40,
        silage_p=0.45,
        catch_p=0.25,
        early_potato_p=0.3,
        grazed_p=0.3,
    ),
    RegionSpec(
        name="beauce",
        title="Beauce",
        country="FR",
        language="fr",
        role="source",
        utm_zone=31,
        lat=48.25,
        lon=1.65,
        label_column="culture",
        class_freq={
            1: 0.10,
            2: 0.40,
            3: 0.14,
            4: 0.11,
            5: 0.03,
            6: 0.02,
            7: 0.08,
            8: 0.04,
            9: 0.08,
        },
        tile_px=740,
        field_ha=1.4,
        field_ha_range=(0.3, 6.0),
        road_spacing_px=(90, 220),
        angle_deg=21.0,
        landcover_p=(0.05, 0.04, 0.01),
        unlabelled_p=0.04,
        shift_days=0.0,
        summer_shift_days=0.0,
        stretch=1.0,
        vigour=1.0,
        soil_brightness=1.25,
        soil_redness=0.35,
        noise=0.005,
        p_clear=0.60,
        snow_p=0.05,
        keep=0.38,
        silage_p=0.1,
        catch_p=0.5,
        early_potato_p=0.2,
        grazed_p=0.2,
    ),
    RegionSpec(
        name="mazovia",
        title="Mazovia",
        country="PL",
        language="pl",
        role="source",
        utm_zone=34,
        lat=52.15,
        lon=20.45,
        label_column="uprawa",
        class_freq={1: 0.17, 2: 0.19, 3: 0.07, 4: 0.08, 6: 0.02, 7: 0.06, 8: 0.10, 9: 0.31},
        tile_px=660,
        field_ha=1.0,
        field_ha_range=(0.3, 6.0),
        road_spacing_px=(60, 160),
        angle_deg=6.0,
        landcover_p=(0.08, 0.05, 0.02),
        unlabelled_p=0.05,
        shift_days=11.0,
        summer_shift_days=-2.0,
        stretch=0.93,
        vigour=0.97,
        soil_brightness=1.05,
        soil_redness=0.10,
        noise=0.007,
        p_clear=0.50,
        snow_p=0.50,
        keep=0.42,
        silage_p=0.4,
        catch_p=0.2,
        early_potato_p=0.4,
        grazed_p=0.4,
    ),
    RegionSpec(
        name="poltava",
        title="Poltava",
        country="UA",
        language="uk",
        role="target",
        utm_zone=36,
        lat=49.55,
        lon=34.45,
        label_column="kultura",
        class_freq={1: 0.22, 2: 0.26, 3: 0.06, 4: 0.04, 5: 0.28, 6: 0.10, 7: 0.04},
        tile_px=320,
        field_ha=2.8,
        field_ha_range=(0.4, 12.0),
        road_spacing_px=(110, 240),
        angle_deg=17.0,
        landcover_p=(0.06, 0.04, 0.0),
        unlabelled_p=0.0,
        shift_days=4.0,
        summer_shift_days=-9.0,
        stretch=0.92,
        vigour=0.90,
        soil_brightness=0.70,
        soil_redness=0.05,
        noise=0.006,
        p_clear=0.65,
        snow_p=0.50,
        keep=0.34,
        silage_p=0.05,
        catch_p=0.05,
        early_potato_p=0.5,
        grazed_p=0.5,
    ),
    RegionSpec(
        name="nebraska",
        title="Central Nebraska",
        country="US",
        language="en",
        role="target",
        utm_zone=14,
        lat=40.90,
        lon=-98.40,
        label_column="crop",
        class_freq={1: 0.44, 6: 0.33, 2: 0.07, 5: 0.03, 8: 0.03, 9: 0.10},
        tile_px=320,
        field_ha=3.2,
        field_ha_range=(0.5, 14.0),
        road_spacing_px=(160, 163),
        angle_deg=0.0,
        landcover_p=(0.03, 0.03, 0.0),
        unlabelled_p=0.0,
        shift_days=-6.0,
        summer_shift_days=-5.0,
        stretch=1.05,
        vigour=1.0,
        soil_brightness=0.90,
        soil_redness=0.30,
        noise=0.005,
        p_clear=0.70,
        snow_p=0.20,
        keep=0.30,
        silage_p=0.1,
        catch_p=0.1,
        early_potato_p=0.3,
        grazed_p=0.7,
    ),
]

REGION_NAMES: list[str] = [r.name for r in REGIONS]


def acquisition_dates(
    spec: RegionSpec, rng: np.random.Generator, n_dates: tuple[int, int] | None = None
) -> list[dt.date]:
    """Irregular acquisition dates: a 5-day grid with a random phase, most slots dropped.

    One slot is kept per stratum so the season is covered, yet the gaps between kept dates vary
    (5 to ~25 days), as with orbit dropouts and unusable scenes. ``n_dates`` forces a count range.
    """
    phase = int(rng.integers(0, REVISIT_DAYS))
    slots = np.arange(SEASON_DOY[0] + phase, SEASON_DOY[1] + 1, REVISIT_DAYS)
    if n_dates is None:
        n = int(round(len(slots) * spec.keep * rng.uniform(0.9, 1.1)))
    else:
        n = int(rng.integers(n_dates[0], n_dates[1] + 1))
    edges = np.linspace(0, len(slots), n + 1).astype(int)
    picks = [int(rng.integers(a, b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    start = dt.date(YEAR, 1, 1)
    return [start + dt.timedelta(days=int(slots[i]) - 1) for i in picks]


def spacecraft(day: dt.date) -> str:
    """Sentinel-2A and -2B alternate on the 5-day grid (10-day repeat each)."""
    return "Sentinel-2A" if (day.toordinal() // REVISIT_DAYS) % 2 == 0 else "Sentinel-2B"
