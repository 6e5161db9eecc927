"""Per-date sky: clouds, cirrus, cloud shadows, snow, no-data edges, SCL; sensor noise.

Cloud and snow masks are smooth blobs: gaussian-filtered noise on a coarse grid (16 px cells,
blobs ~0.5-2 km), thresholded at the quantile that gives the date's cover. The coarse grid is
sampled bilinearly row block by row block, so a 4096² tile never needs a full-size mask.
Corruption is real: clouds brighten, shadows darken, snow replaces the surface, no-data is 0.
The mask is imperfect, as real L2A masks are: faint cloud edges and shadow fringes, and thin haze
over parts of some scenes, are classed as clear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from cropmeta.synth.regions import RegionSpec

CELL = 16  # px per coarse cell
PAD = 5  # coarse cells of margin, so shifted (shadow) look-ups stay inside the grid
CLOUD_SHAPE = np.array([1.05, 1.03, 1.0, 1.0, 1.0, 0.98, 0.97, 0.97, 0.8, 0.65], np.float32)
SNOW = np.array([0.85, 0.83, 0.80, 0.78, 0.75, 0.72, 0.70, 0.68, 0.10, 0.07], np.float32)
# Sentinel-2 L2A scene classification codes.
NO_DATA, SHADOW, VEGETATION, NOT_VEGETATED, WATER = 0, 3, 4, 5, 6
CLOUD_MEDIUM, CLOUD_HIGH, CIRRUS, SNOW_ICE = 8, 9, 10, 11


@dataclass
class Sky:
    """What the atmosphere and the sensor do to one acquisition."""

    cloud: np.ndarray | None  # coarse, normalised noise field; cloud where > thr
    thr: float
    shadow_shift: tuple[float, float]  # shadow displacement from its cloud (rows, cols) in px
    cloud_refl: np.ndarray
    snow: np.ndarray | None
    snow_thr: float
    nodata: tuple[bool, float, float] | None  # (east edge?, width share, slope)
    height: int  # tile rows
    haze: np.ndarray | None = None  # thin haze the scene classification misses
    haze_thr: float = np.inf
    haze_max: float = 0.0  # its largest opacity


def _coarse(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    shape = (h // CELL + 2 * PAD + 2, w // CELL + 2 * PAD + 2)
    f = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return ((f - f.mean()) / f.std()).astype(np.float32)


def _threshold(field: np.ndarray, h: int, w: int, cover: float) -> float:
    inner = field[PAD : PAD + h // CELL + 1, PAD : PAD + w // CELL + 1]
    return float(np.quantile(inner, 1 - cover))


def _weights(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower coarse index and the upper neighbour's weight for pixel coordinates."""
    c = np.clip(coords / CELL + PAD, 0, n - 1.001)
    i = np.floor(c).astype(np.intp)
    return i, (c - i).astype(np.float32)


def _sample(field: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear sample (rows × cols) of a coarse field at pixel coordinates (no BLAS)."""
    i, fy = _weights(rows, field.shape[0])
    j, fx = _weights(cols, field.shape[1])
    part = field[i] * (1 - fy)[:, None] + field[i + 1] * fy[:, None]
    return part[:, j] * (1 - fx) + part[:, j + 1] * fx


def draw_sky(rng: np.random.Generator, h: int, w: int, doy: int, spec: RegionSpec) -> Sky:
    """Draw a date's sky: mostly clear, sometimes partly or mostly cloudy; snow in late winter."""
    u = rng.random()
    if u < spec.p_clear:
        cover = 0.0
    elif u < spec.p_clear + 0.65 * (1 - spec.p_clear):
        cover = rng.uniform(0.05, 0.4)
    else:
        cover = rng.uniform(0.55, 0.95)
    cloud = _coarse(rng, h, w, rng.uniform(1.5, 3.5)) if cover > 0 else None
    thr = _threshold(cloud, h, w, cover) if cloud is not None else np.inf
    shift = (-rng.uniform(15, 45), -rng.uniform(10, 40))
    cloud_refl = CLOUD_SHAPE * rng.uniform(0.3, 0.7)
    snow, snow_thr = None, np.inf
    if doy < 85 and rng.random() < spec.snow_p:
        snow = _coarse(rng, h, w, 4.0)
        snow_thr = _threshold(snow, h, w, rng.uniform(0.4, 1.0))
    nodata = None
    if rng.random() < 0.15:
        nodata = (bool(rng.random() < 0.5), rng.uniform(0.02, 0.12), rng.uniform(-0.25, 0.25))
    haze, haze_thr, haze_max = None, np.inf, 0.0
    if rng.random() < 0.35:  # undetected thin haze over part of the scene
        haze = _coarse(rng, h, w, rng.uniform(2.0, 4.0))
        haze_thr = _threshold(haze, h, w, rng.uniform(0.03, 0.25))
        haze_max = rng.uniform(0.04, 0.12)
    return Sky(cloud, thr, shift, cloud_refl, snow, snow_thr, nodata, h, haze, haze_thr, haze_max)


def _opacity(v: np.ndarray, thr: float, halo: float = 0.35) -> np.ndarray:
    """Thick cloud (0.3-1) above the threshold, a thin cirrus ring (0-0.3) just below it."""
    thick = 0.3 + 0.7 * np.clip((v - thr) / 0.8, 0, 1)
    ring = 0.3 * np.clip((v - thr + halo) / halo, 0, 1)
    return np.where(v >= thr, thick, ring)


def _blend(refl: np.ndarray, alpha: np.ndarray, spectrum: np.ndarray, weight: np.ndarray) -> None:
    """In place: refl = (1 - alpha) · refl + weight · spectrum, band by band (no temporaries)."""
    keep = 1 - alpha
    for b in range(refl.shape[0]):
        refl[b] *= keep
        refl[b] += spectrum[b] * weight


def apply_sky(sky: Sky, refl: np.ndarray, r0: int) -> np.ndarray:
    """Corrupt a (bands × rows × cols) surface block in place; return its SCL (uint16).

    The block's first row is tile row ``r0``. Clear pixels are classed from their NDVI
    (vegetation > 0.4) and from a dark-NIR water test.
    """
    _, h, w = refl.shape
    rows = np.arange(r0, r0 + h) + 0.5
    cols = np.arange(w) + 0.5
    ndvi = (refl[6] - refl[2]) / np.maximum(refl[6] + refl[2], 1e-6)
    scl = np.where(ndvi > 0.4, VEGETATION, NOT_VEGETATED).astype(np.uint16)
    scl[(refl[6] < 0.06) & (refl[1] > refl[6])] = WATER
    if sky.snow is not None:
        s = np.clip((_sample(sky.snow, rows, cols) - sky.snow_thr) / 0.25, 0, 1)
        _blend(refl, s, SNOW, s)
        scl[s > 0.1] = SNOW_ICE
    if sky.cloud is not None:
        dy, dx = sky.shadow_shift
        shade = _opacity(_sample(sky.cloud, rows - dy, cols - dx), sky.thr)
        shade = np.clip((shade - 0.2) / 0.3, 0, 1)
        refl *= 1 - 0.6 * shade
        scl[shade > 0.15] = SHADOW  # faint shadow edges pass as clear
    if sky.haze is not None:
        h_a = sky.haze_max * np.clip((_sample(sky.haze, rows, cols) - sky.haze_thr) / 0.6, 0, 1)
        _blend(refl, h_a, sky.cloud_refl / max(float(sky.cloud_refl[0]), 1e-6) * 0.25, h_a)
    if sky.cloud is not None:
        a = _opacity(_sample(sky.cloud, rows, cols), sky.thr)
        _blend(refl, a, sky.cloud_refl, a * (0.85 + 0.3 * a))
        scl[a > 0.08] = CIRRUS  # the outer cloud edge is missed by the mask
        scl[a >= 0.3] = CLOUD_MEDIUM
        scl[a >= 0.65] = CLOUD_HIGH
    if sky.nodata is not None:
        east, share, slope = sky.nodata
        edge = w * (share + slope * rows[:, None] / sky.height)
        mask = cols[None, :] > w - edge if east else cols[None, :] < edge
        scl[mask] = NO_DATA
    return scl


def sensor_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean sensor noise with std ``sigma``: a sum of two random bytes (triangular).

    Several times faster than normal draws, which dominated the run time of large tiles.
    """
    n = int(np.prod(shape))
    b = np.frombuffer(rng.bytes(2 * n), np.int8)
    out = b[:n].astype(np.float32)
    out += b[n:]
    out += 1.0  # each byte has mean -0.5
    out *= np.float32(sigma / 104.5)  # std of the sum of two uniform bytes
    return out.reshape(shape)
