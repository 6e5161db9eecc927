"""The one preparation path from raw observations to model-ready series.

Training data (per-field means written by :mod:`cropmeta.ingest.preprocess`) and map-time data
(per-pixel series read by :mod:`cropmeta.mapping`) both go through these functions with the
parameters recorded in :class:`Preparation`, which travels in every region dataset and model
checkpoint. A model therefore never sees differently prepared data when it maps.

Steps: scale digital numbers to reflectance and mask invalid pixels (nodata, and the Sentinel-2
scene-classification classes for clouds, shadows, snow, saturation), composite the irregular
acquisitions onto a regular day-of-year grid, fill empty grid steps by linear interpolation in
time, and standardise per band.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
from pydantic import BaseModel, Field

#: Sentinel-2 L2A SCL classes treated as unusable: 0 no data, 1 saturated/defective,
#: 3 cloud shadow, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus, 11 snow.
SCL_INVALID: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)


class TemporalGrid(BaseModel):
    """A regular grid over one growing season: a composite every ``step`` days from day of year
    ``start_doy`` to ``end_doy``. A season may cross New Year (``end_doy < start_doy``, e.g. a
    Mato Grosso soy season from September to August).

    Day of year, not calendar date, is the shared time axis, so that regions (and years) with
    different acquisition calendars line up.
    """

    start_doy: int = Field(60, ge=1, le=366)
    end_doy: int = Field(300, ge=1, le=366)
    step: int = Field(10, ge=1, le=120)

    @property
    def length(self) -> int:
        """Days from the first to the last grid step."""
        return (self.end_doy - self.start_doy) % 365

    def offsets(self) -> np.ndarray:
        """Days since the season start of each grid step."""
        return np.arange(0, self.length + 1, self.step, dtype=np.int32)

    def doys(self) -> np.ndarray:
        """Day of year of each grid step."""
        return ((self.start_doy - 1 + self.offsets()) % 365 + 1).astype(np.int32)

    def position(self, doys: np.ndarray) -> np.ndarray:
        """Signed days since the season start; days shortly before the start come out negative."""
        days = (np.asarray(doys) - self.start_doy) % 365
        gap = 365 - self.length  # the off-season, split between the season's two ends
        return np.where(days > self.length + gap / 2, days - 365, days)

    def in_season(self, doys: np.ndarray) -> np.ndarray:
        """Acquisitions that fall into some grid step's compositing window."""
        pos = self.position(doys)
        return (pos >= -self.step / 2) & (pos <= self.length + self.step / 2)

    def season_start(self, first: date) -> date:
        """The calendar date of the season start for an in-season acquisition on ``first``."""
        pos = int(self.position(np.array([first.timetuple().tm_yday]))[0])
        return first - timedelta(days=pos)

    def __len__(self) -> int:
        return len(self.offsets())


class Preparation(BaseModel):
    """Everything that defines how raw tiles become model input; recorded with data and models."""

    bands: list[str]
    quality_band: str | None = "SCL"
    invalid_classes: list[int] = Field(default_factory=lambda: list(SCL_INVALID))
    grid: TemporalGrid = Field(default_factory=TemporalGrid)
    valid_range: tuple[float, float] | None = Field(
        None, description="pixels with a (scaled) band value outside this range are masked"
    )
    min_valid_fraction: float = Field(
        0.2, ge=0, le=1, description="least share of in-season acquisitions that must be valid"
    )


def incompatibility(a: Preparation, b: Preparation) -> str | None:
    """Why series prepared by ``a`` and ``b`` cannot meet in one model, or None if they can.

    Bands (ignoring case) and the temporal grid must agree; how invalid pixels were found may
    differ, since a table of field series has no SCL band while a Sentinel-2 tile has one.
    """
    if [x.casefold() for x in a.bands] != [x.casefold() for x in b.bands]:
        return f"bands differ ({', '.join(a.bands)} vs {', '.join(b.bands)})"
    if a.grid != b.grid:
        return f"temporal grids differ ({a.grid} vs {b.grid})"
    return None


def mask_invalid(
    values: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    nodata: float | None,
    quality: np.ndarray | None,
    invalid_classes: list[int] | tuple[int, ...],
    valid_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Digital numbers ``values`` (band, ...) → float32 reflectance with NaN where unusable.

    ``scale``/``offset`` are per band (reflectance = DN × scale + offset, the GDAL convention);
    ``quality`` is the scene classification with the same trailing shape; ``valid_range`` masks
    pixels whose reflectance (or index) leaves the physically possible range in any band.
    """
    shape = (-1,) + (1,) * (values.ndim - 1)
    bad = np.zeros(values.shape[1:], dtype=bool)
    if nodata is not None:
        bad |= np.any(values == nodata, axis=0)
    if quality is not None:
        bad |= np.isin(quality, np.asarray(invalid_classes))
    out = values.astype(np.float32) * scale.reshape(shape).astype(np.float32)
    out += offset.reshape(shape).astype(np.float32)
    if valid_range is not None:
        with np.errstate(invalid="ignore"):
            bad |= np.any((out < valid_range[0]) | (out > valid_range[1]), axis=0)
    bad |= np.isnan(out).any(axis=0)
    out[:, bad] = np.nan
    return out


def composite(values: np.ndarray, doys: np.ndarray, grid: TemporalGrid) -> np.ndarray:
    """Mean of the valid acquisitions that fall in each grid step.

    ``values`` is (time, band, sample) with NaN for masked observations; returns
    (grid step, band, sample), NaN where a step had no valid observation.
    """
    centres = grid.offsets()
    half = grid.step / 2.0
    delta = grid.position(doys)[None, :] - centres[:, None]
    in_step = (np.abs(delta) < half) | (delta == -half)
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0).astype(np.float32)
    weights = in_step.astype(np.float32)
    sums = np.tensordot(weights, filled, axes=(1, 0))
    counts = np.tensordot(weights, valid.astype(np.float32), axes=(1, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).astype(np.float32)


def interpolate_gaps(series: np.ndarray) -> np.ndarray:
    """Fill NaN steps of (step, band, sample) linearly in time; hold the ends constant.

    A sample's band that has no valid step at all stays NaN.
    """
    steps = series.shape[0]
    valid = ~np.isnan(series)
    idx = np.arange(steps).reshape((-1,) + (1,) * (series.ndim - 1))
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(valid, idx, steps)[::-1], axis=0)[::-1]
    has_prev, has_next = prev >= 0, nxt < steps
    prev_c, next_c = np.clip(prev, 0, steps - 1), np.clip(nxt, 0, steps - 1)
    v_prev = np.take_along_axis(series, np.broadcast_to(prev_c, series.shape), axis=0)
    v_next = np.take_along_axis(series, np.broadcast_to(next_c, series.shape), axis=0)
    span = np.maximum(next_c - prev_c, 1)
    w = (idx - prev_c) / span
    both = v_prev + (v_next - v_prev) * w
    out = np.where(has_prev & has_next, both, np.where(has_prev, v_prev, v_next))
    return np.where(valid, series, out).astype(np.float32)


def regularise(
    values: np.ndarray, doys: np.ndarray, prep: Preparation
) -> tuple[np.ndarray, np.ndarray]:
    """Irregular masked observations (time, band, sample) → regular series and valid fractions.

    Returns the series on ``prep.grid`` (step, band, sample) and, per sample, the share of
    in-season acquisitions that were valid. Samples below ``prep.min_valid_fraction`` come back
    all-NaN so that callers drop them (preprocess) or leave them unclassified (map).
    """
    doys = np.asarray(doys)
    grid = prep.grid
    season = grid.in_season(doys)
    values = values[season]
    valid_obs = ~np.isnan(values).any(axis=1)
    fraction = valid_obs.mean(axis=0) if len(values) else np.zeros(values.shape[2:], np.float32)
    series = interpolate_gaps(composite(values, doys[season], grid))
    unusable = (fraction < prep.min_valid_fraction) | np.isnan(series).any(axis=(0, 1))
    series[:, :, unusable] = np.nan
    return series, fraction.astype(np.float32)


class Normaliser(BaseModel):
    """Per-band standardisation computed on the meta-training (source) regions only."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, x: np.ndarray) -> Normaliser:
        """Fit on series shaped (sample, step, band)."""
        flat = x.reshape(-1, x.shape[-1])
        return cls(mean=flat.mean(0).tolist(), std=(flat.std(0) + 1e-6).tolist())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardise (..., band) series."""
        return ((x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(
            np.float32
        )
