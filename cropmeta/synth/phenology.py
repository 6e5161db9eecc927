"""Crop calendars as cover fractions, and linear mixing of endmember spectra into reflectance.

Each crop is described by day-of-year curves of green-vegetation, dry-vegetation (senescent
canopy, residue) and yellow-flower fractions; the rest of a pixel is soil. Dates follow
``shared/design/crop-phenology.md`` for temperate Europe and are shifted/stretched per region.
Reflectance is the fraction-weighted sum of endmember spectra (bands :data:`BANDS`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from cropmeta.synth.regions import RegionSpec

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def _spec(*v: float) -> np.ndarray:
    return np.array(v, dtype=np.float32)


# Surface reflectance endmembers (0-1) in BANDS order.
VEG = _spec(0.025, 0.075, 0.028, 0.110, 0.290, 0.380, 0.420, 0.440, 0.210, 0.100)
SOIL = _spec(0.075, 0.105, 0.135, 0.160, 0.180, 0.200, 0.220, 0.240, 0.320, 0.270)
DRY = _spec(0.070, 0.100, 0.130, 0.170, 0.210, 0.240, 0.270, 0.290, 0.380, 0.290)
FLOWER = _spec(0.040, 0.170, 0.160, 0.210, 0.300, 0.360, 0.400, 0.420, 0.240, 0.120)
FOREST = _spec(0.020, 0.040, 0.022, 0.070, 0.200, 0.260, 0.280, 0.290, 0.130, 0.060)
URBAN = _spec(0.100, 0.115, 0.125, 0.145, 0.160, 0.170, 0.185, 0.195, 0.230, 0.205)
ROAD = _spec(0.090, 0.100, 0.110, 0.120, 0.130, 0.135, 0.140, 0.145, 0.170, 0.160)
WATER = _spec(0.050, 0.060, 0.040, 0.035, 0.020, 0.015, 0.012, 0.010, 0.005, 0.003)

#: Canopy NIR/red-edge gain per crop code (soybean has the lowest NIR peak); 0 = fallow.
NIR_GAIN = {0: 0.95, 1: 1.0, 2: 0.97, 3: 0.97, 4: 1.04, 5: 0.98, 6: 0.91, 7: 1.03, 8: 1.04, 9: 0.95}
SUMMER_CROPS = frozenset({1, 5, 6, 7, 8})
# Winter crops: green-up midpoint, senescence midpoint, harvest, winter green level, peak.
# Barley runs only ~10-12 days ahead of wheat, so the two overlap once fields are jittered.
WINTER = {
    2: (95, 172, 200, 0.25, 0.86),
    3: (88, 161, 189, 0.27, 0.85),
    4: (80, 168, 197, 0.45, 0.90),
}
# Summer crops: emergence midpoint, its rate, senescence midpoint, its rate, harvest, peak, dry max.
# Sunflower, soybean and maize are sown within a few weeks of each other and overlap in summer.
SUMMER = {
    1: (170, 7, 260, 8, 288, 0.90, 0.60),
    5: (158, 7, 214, 7, 250, 0.84, 0.72),
    6: (167, 7, 251, 7, 277, 0.82, 0.60),
    7: (152, 8, 305, 15, 292, 0.92, 0.30),
    8: (152, 6, 206, 1.2, 232, 0.88, 0.50),
}
#: Reference date of each crop around which a field's season is stretched or shortened.
ANCHOR = {
    0: 110.0,
    1: 170.0,
    2: 95.0,
    3: 88.0,
    4: 80.0,
    5: 158.0,
    6: 167.0,
    7: 152.0,
    8: 152.0,
    9: 95.0,
}


def soil_spectrum(spec: RegionSpec) -> np.ndarray:
    """The region's soil: base soil scaled by brightness, visible bands tinted by redness."""
    tint = np.ones(len(BANDS), np.float32)
    tint[:4] += spec.soil_redness * np.array([-0.45, -0.2, 0.25, 0.1], np.float32)
    return SOIL * spec.soil_brightness * tint


def effective_doy(doy: np.ndarray, spec: RegionSpec, code: int) -> np.ndarray:
    """Map a region's day of year onto the reference (temperate European) calendar."""
    shift = spec.shift_days + (spec.summer_shift_days if code in SUMMER_CROPS else 0.0)
    return 180.0 + (doy - shift - 180.0) / spec.stretch


def _col(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, (n, 1))


def _winter(t: np.ndarray, code: int, rng: np.random.Generator, amp: np.ndarray, spec: RegionSpec):
    up, sen, hv, w0, peak = WINTER[code]
    n = len(t)
    hv = hv + rng.normal(0, 4, (n, 1))
    sen = sen + rng.normal(0, 4, (n, 1))  # early ripening on light soils / drought
    w0 = w0 * _col(rng, n, 0.5, 1.4)  # autumn establishment and winter damage vary
    green = w0 + (peak * amp - w0) * expit((t - up) / _col(rng, n, 7, 12))
    green = green * (1 - expit((t - sen) / 6))
    cut = expit((t - hv) / 1.5)
    dry = 0.75 * expit((t - sen) / 6) * (1 - cut) + 0.25 * cut * (1 - expit((t - hv - 30) / 3))
    # after harvest: a catch crop on some fields, volunteers/weeds on others
    catch = (rng.random((n, 1)) < spec.catch_p) * _col(rng, n, 0.2, 0.6)
    weeds = _col(rng, n, 0.0, 0.15)
    start = hv + _col(rng, n, 12, 40)
    green = green + np.maximum(catch, weeds) * expit((t - start) / 6) * (
        1 - expit((t - _col(rng, n, 290, 340)) / 5)
    )
    # next season's winter crop emerging in autumn on some fields
    green = green + _col(rng, n, 0, 0.25) * expit((t - rng.normal(295, 8, (n, 1))) / 7)
    flower = np.zeros_like(t)
    if code == 4:  # rapeseed: yellow flowering dip in late April-May
        flower = _col(rng, n, 0.25, 0.5) * np.exp(-0.5 * ((t - 128) / 9) ** 2)
        green = green * (1 - flower)
    return green, dry, flower


def _summer(t: np.ndarray, code: int, rng: np.random.Generator, amp: np.ndarray, spec: RegionSpec):
    up, r_up, sen, r_sen, hv, peak, dmax = SUMMER[code]
    n = len(t)
    sen = sen + np.zeros((n, 1))
    if code == 8:  # potato: early and late varieties; haulm killing at a field-specific date
        early = rng.random((n, 1)) < spec.early_potato_p
        sen = np.where(early, 186.0, 222.0) + rng.normal(0, 6, (n, 1))
        up = np.where(early, 146.0, 156.0)
        hv = sen + _col(rng, n, 15, 30)
    elif code == 1:  # maize: silage cut green in Aug/early Sep, grain maize in Oct
        silage = rng.random((n, 1)) < spec.silage_p
        hv = np.where(silage, rng.normal(241, 8, (n, 1)), hv + rng.normal(0, 8, (n, 1)))
    else:
        hv = hv + rng.normal(0, 14 if code == 7 else 6, (n, 1))
    sen = np.minimum(sen + rng.normal(0, 5, (n, 1)), hv + 5)
    cut = expit((t - hv) / 1.5)
    green = peak * amp * expit((t - up) / r_up) * (1 - expit((t - sen) / r_sen)) * (1 - cut)
    dry = dmax * expit((t - sen) / r_sen) * (1 - cut) + _col(rng, n, 0.1, 0.4) * cut
    # weeds before sowing and cover-crop remains in spring on some fields; weeds after harvest
    spring = _col(rng, n, 0.0, 0.12) * (1 - expit((t - _col(rng, n, 95, 130)) / 5))
    late = _col(rng, n, 0.0, 0.12) * expit((t - hv - 20) / 6)
    return green + 0.04 * (1 - cut) + spring + late, dry, np.zeros_like(t)


def _grass(t: np.ndarray, rng: np.random.Generator, amp: np.ndarray, spec: RegionSpec):
    """Meadows mown 1-4 times at field-specific dates; pastures grazed (lower, patchier)."""
    n = len(t)
    grazed = rng.random((n, 1)) < spec.grazed_p
    base = np.where(grazed, _col(rng, n, 0.3, 0.45), _col(rng, n, 0.35, 0.5))
    rise = np.where(grazed, _col(rng, n, 0.15, 0.35), 0.45 * amp)
    green = (base + rise * expit((t - _col(rng, n, 85, 110)) / 10)) * np.ones_like(t)
    # summer drought browning, stronger on some fields
    brown = _col(rng, n, 0.0, 0.3) * np.exp(-0.5 * ((t - _col(rng, n, 200, 235)) / 15) ** 2)
    green = green * (1 - brown)
    dry = 0.3 * brown
    n_cuts = np.where(grazed[:, 0], rng.integers(0, 2, n), rng.integers(1, 5, n))
    cut = rng.uniform(125, 165, n)
    for k in range(4):
        x = t - cut[:, None]
        on = (k < n_cuts)[:, None] & (x >= 0)
        green = green * np.where(on, 1 - _col(rng, n, 0.4, 0.75) * np.exp(-x / 11), 1)
        dry = dry + np.where(on, 0.35 * np.exp(-x / 4), 0)
        cut = cut + rng.uniform(28, 60, n)
    green = green * np.where(grazed, 1 + rng.normal(0, 0.08, t.shape), 1)
    return green, dry, np.zeros_like(t)


def _fallow(t: np.ndarray, rng: np.random.Generator, amp: np.ndarray):
    n = len(t)
    green = 0.25 + 0.3 * amp * expit((t - _col(rng, n, 95, 125)) / 12) * (
        1 - expit((t - _col(rng, n, 210, 250)) / 12)
    )
    return green, 0.2 + 0 * t, np.zeros_like(t)


def fractions(code: int, doy: np.ndarray, n: int, spec: RegionSpec, rng: np.random.Generator):
    """Green, dry and flower fractions (each n × dates) for ``n`` fields of one crop.

    Every field gets its own sowing/green-up shift (up to ± 20 days), season length (± ~12 %),
    canopy density (peak green ~0.6-0.95) and management (silage or grain maize, early or late
    potato, catch crops, number of grass cuts, grazing). Code 0 is an unlabelled fallow parcel.
    """
    jitter = np.clip(rng.normal(0, 8, (n, 1)), -20, 20)
    length = rng.uniform(0.88, 1.12, (n, 1))
    anchor = ANCHOR.get(code, 180.0)
    t = (
        anchor
        + (effective_doy(doy[None, :].astype(np.float64), spec, code) - jitter - anchor) / length
    )
    amp = rng.uniform(0.7, 1.06, (n, 1)) * (spec.vigour if code in SUMMER_CROPS else 1.0)
    if code in WINTER:
        g, d, f = _winter(t, code, rng, amp, spec)
    elif code in SUMMER:
        g, d, f = _summer(t, code, rng, amp, spec)
    elif code == 9:
        g, d, f = _grass(t, rng, amp, spec)
    else:
        g, d, f = _fallow(t, rng, amp)
    # per field and date: stress, lodging, uneven emergence not captured by the smooth curves
    g = g * (1 + rng.normal(0, 0.04, g.shape))
    g, d, f = (np.clip(a, 0, 1) for a in (g, d, f))
    total = np.maximum(g + d + f, 1.0)
    return g / total, d / total, f / total


#: How strongly wetting darkens soil per band (water absorbs most in the SWIR).
MOISTURE_WEIGHT = np.array([0.8, 0.8, 0.8, 0.85, 0.85, 0.9, 0.9, 0.9, 1.2, 1.3], np.float32)


def field_soils(soil: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-field soil (n × dates × bands): own brightness (texture, organic matter, ± ~20 %)
    and per-date moisture (recent rain darkens the soil, most in the SWIR)."""
    bright = rng.uniform(0.78, 1.22, (n, 1, 1))
    wet = np.clip(rng.gamma(1.0, 0.05, (n, soil.shape[1], 1)), 0, 0.3)
    out = soil * bright * (1 - wet * MOISTURE_WEIGHT)
    return out.astype(np.float32)


def mix(green, dry, flower, soil: np.ndarray, veg: np.ndarray = VEG) -> np.ndarray:
    """Linear mixture (n × dates × bands) of vegetation, dry matter, flowers and soil."""
    rest = np.clip(1 - green - dry - flower, 0, 1)
    out = green[..., None] * veg + dry[..., None] * DRY + flower[..., None] * FLOWER
    return (out + rest[..., None] * soil).astype(np.float32)


def crop_veg(code: int, rng: np.random.Generator | None = None, n: int = 1) -> np.ndarray:
    """Green-canopy spectrum of a crop (NIR plateau scaled by its gain).

    With ``rng``, ``n`` field spectra (n × 1 × bands): leaf structure, variety and LAI give each
    field its own NIR level (± ~6 %) and chlorophyll its own visible reflectance (± ~10 %).
    """
    veg = VEG.copy()
    veg[4] *= 1 + (NIR_GAIN[code] - 1) * 0.5
    veg[5:8] *= NIR_GAIN[code]
    if rng is None:
        return veg
    nir = rng.normal(1.0, 0.035, (n, 1, 1)).clip(0.9, 1.1)
    vis = rng.normal(1.0, 0.06, (n, 1, 1)).clip(0.85, 1.15)
    scale = np.ones((n, 1, len(BANDS)))
    scale[..., :4] = vis
    scale[..., 4] = (1 + nir[..., 0]) / 2
    scale[..., 5:8] = nir
    return (veg * scale).astype(np.float32)


def landcover(kind: str, doy: np.ndarray, n: int, soil: np.ndarray, rng: np.random.Generator):
    """Reflectance (n × dates × bands) and green fraction of non-crop land.

    Forest is evergreen-ish (a deciduous share leafs out in April), villages mix roofs, gardens
    and soil, roads are bright and flat, water is dark in NIR/SWIR, verges are grass strips.
    """
    t = doy[None, :].astype(np.float64) + rng.normal(0, 3, (n, 1))
    zero = np.zeros((n, len(doy)))
    if kind == "forest":
        leaf = expit((t - 118) / 8) - expit((t - 292) / 10)
        green = 1 - rng.uniform(0.1, 0.4, (n, 1)) * (1 - leaf)
        out = green[..., None] * FOREST + (1 - green[..., None]) * DRY * 0.6
        return out.astype(np.float32), green
    if kind == "village":
        green = 0.3 * (0.5 + 0.5 * expit((t - 105) / 10)) + zero
        built = rng.uniform(0.45, 0.65, (n, 1)) + zero
        out = mix(green, zero, zero, soil) * (1 - built[..., None]) + built[..., None] * URBAN
        return out.astype(np.float32), green * (1 - built)
    if kind in ("road", "water"):
        base = ROAD if kind == "road" else WATER
        out = base * rng.uniform(0.9, 1.1, (n, 1, 1)) + zero[..., None]
        return out.astype(np.float32), zero
    green = 0.35 + 0.3 * expit((t - 100) / 10) - 0.15 * expit((t - 215) / 10)
    return mix(green, 0.15 + zero, zero, soil), green
