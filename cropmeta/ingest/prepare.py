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
#: Landsat Collection 2 QA_PIXEL bits treated as unusable (USGS LSDS-1619): 0 fill, 1 dilated
#: cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 5 snow.
QA_PIXEL_INVALID_BITS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)


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
    invalid_bits: list[int] = Field(
        default_factory=list,
        exclude_if=lambda bits: not bits,  # unwritten when unused: records stay as they were
        description="a bit-flag quality band's (Landsat's QA_PIXEL) bits that mask a pixel when "
        "set; where given, they replace invalid_classes",
    )
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
    invalid_bits: list[int] | tuple[int, ...] = (),
) -> np.ndarray:
    """Digital numbers ``values`` (band, ...) → float32 reflectance with NaN where unusable.

    ``scale``/``offset`` are per band (reflectance = DN × scale + offset, the GDAL convention);
    ``quality`` is the scene classification with the same trailing shape, whose
    ``invalid_classes`` are masked, or, with ``invalid_bits``, a bit-flag band (Landsat's
    QA_PIXEL) masked where any of those bits is set (and where it is missing, NaN);
    ``valid_range`` masks pixels whose reflectance (or index) leaves the physically possible
    range in any band.
    """
    shape = (-1,) + (1,) * (values.ndim - 1)
    bad = np.zeros(values.shape[1:], dtype=bool)
    if nodata is not None:
        bad |= np.any(values == nodata, axis=0)
    if quality is not None and invalid_bits:
        flags = sum(1 << b for b in invalid_bits)
        missing = np.isnan(quality) if quality.dtype.kind == "f" else False
        bits = np.where(missing, flags, quality).astype(np.int64)
        bad |= (bits & flags) != 0
    elif quality is not None:
        bad |= np.isin(quality, np.asarray(invalid_classes))
    out = values.astype(np.float32) * scale.reshape(shape).astype(np.float32)
    out += offset.reshape(shape).astype(np.float32)
    if valid_range is not None:
        with np.errstate(invalid="ignore"):
            bad |= np.any((out < valid_range[0]) | (out > valid_range[1]), axis=0)
    bad |= np.isnan(out).any(axis=0)
    out[:, bad] = np.nan
    return out


def _step_members(doys: np.ndarray, grid: TemporalGrid) -> list[np.ndarray]:
    """Indices of the acquisitions that fall in each grid step's compositing window.

    A step centred ``c`` days into the season takes the acquisitions at ``c - step/2 <= position
    < c + step/2``, so each acquisition belongs to at most one step.
    """
    delta = grid.position(np.asarray(doys))[None, :] - grid.offsets()[:, None]
    half = grid.step / 2.0
    in_step = (np.abs(delta) < half) | (delta == -half)
    return [np.flatnonzero(row) for row in in_step]


def composite(values: np.ndarray, doys: np.ndarray, grid: TemporalGrid) -> np.ndarray:
    """Mean of the valid acquisitions that fall in each grid step.

    ``values`` is (time, band, sample) with NaN for masked observations; returns
    (grid step, band, sample) float32, NaN where a step had no valid observation.

    Steps are filled one at a time from the few acquisitions in them (usually none or one), so
    the work and the temporaries scale with one step, not with steps × acquisitions.
    """
    members = _step_members(doys, grid)
    out = np.empty((len(members),) + values.shape[1:], dtype=np.float32)
    for step, times in zip(out, members, strict=True):
        if len(times) == 0:
            step.fill(np.nan)
        elif len(times) == 1:
            step[...] = values[times[0]]  # a masked observation stays NaN
        else:
            _nanmean_into(step, values, times)
    return out


def _nanmean_into(out: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
    """Write the mean over ``times`` of the non-NaN ``values[t]`` into ``out`` (NaN if none)."""
    out.fill(0.0)
    count = np.zeros(out.shape, dtype=np.min_scalar_type(len(times)))
    for t in times:
        obs = values[t]
        ok = ~np.isnan(obs)
        np.add(out, obs, out=out, where=ok)
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(out, count, out=out, dtype=np.float32)  # 0 / 0 gives NaN where none is valid


#: Cells per slab in :func:`_fill_gaps`: small enough that a slab's scratch arrays stay in cache,
#: large enough that the per-step Python overhead stays small.
_SLAB_CELLS = 16384


def interpolate_gaps(series: np.ndarray) -> np.ndarray:
    """Fill NaN steps of (step, ...) linearly in time; hold the ends constant.

    Interior gaps are interpolated linearly in step index between the nearest valid steps on
    either side; leading and trailing gaps take the nearest valid value. A sample's band that has
    no valid step at all stays NaN. Returns a new float32 array.
    """
    out = np.array(series, dtype=np.float32, order="C", copy=True)
    _fill_gaps(out)
    return out


def _fill_gaps(series: np.ndarray) -> None:
    """:func:`interpolate_gaps` in place on a C-contiguous float32 array (step, ...).

    Works through slabs of the last axis so that every temporary is the size of a slab, not of
    the series. Where all bands (middle axes) of a sample are masked at the same steps, as with
    cloud masks, the gap bookkeeping is done once per sample rather than once per band.
    """
    steps = series.shape[0]
    cube = series.reshape(steps, -1, series.shape[-1] if series.ndim > 1 else 1)
    mid, n = cube.shape[1:]
    if cube.size == 0:
        return
    width = max(1, _SLAB_CELLS // mid)
    for lo in range(0, n, width):
        slab = cube[:, :, lo : lo + width]
        gaps = np.isnan(slab)
        if mid > 1:
            any_band = gaps.any(axis=1, keepdims=True)
            if np.array_equal(any_band, gaps.all(axis=1, keepdims=True)):
                gaps = any_band
        _fill_slab(slab, gaps)


def _fill_slab(s: np.ndarray, gaps: np.ndarray) -> None:
    """Fill the gaps of ``s`` (step, band, sample) in place; ``gaps`` broadcasts against ``s``.

    A backward pass carries the next valid value into each gap (``after``); a forward pass
    carries the previous valid value (``before``) and writes ``before + (after - before) *
    weight``, with ``weight = (k - prev) / (nxt - prev)`` from the indices of the previous and
    next valid steps. Before the first valid step ``before`` starts as the first valid value, so
    the difference is zero and that value is held; after the last valid step the difference is
    masked to zero, holding the last value. Per-cell choices between two float arrays are made
    with bit masks on their int32 views: branch-free, hence fast on ragged cloud masks. Steps
    that are valid everywhere, or nowhere (grid steps with no acquisition), skip the choice.
    """
    steps = s.shape[0]
    index_type = np.int8 if steps < np.iinfo(np.int8).max else np.int16
    valid = ~gaps
    all_valid = valid.all(axis=(1, 2)).tolist()
    any_valid = valid.any(axis=(1, 2)).tolist()
    keep = valid.astype(np.int32)
    np.negative(keep, out=keep)  # all bits set where valid, none where a gap
    # Indices of the previous and next valid step (-1 and ``steps`` where there is none).
    k_col = np.arange(steps).reshape(-1, 1, 1)
    prev = np.multiply(valid, k_col + 1, dtype=index_type)
    prev -= 1
    nxt = np.multiply(valid, k_col - steps, dtype=index_type)
    nxt += steps
    for k in range(1, steps):
        np.maximum(prev[k], prev[k - 1], out=prev[k])
        np.minimum(nxt[-1 - k], nxt[-k], out=nxt[-1 - k])
    weight = np.subtract(k_col, prev, dtype=np.float32)
    span = np.subtract(nxt, prev, dtype=np.float32)
    np.maximum(span, 1, out=span)
    weight /= span
    has_next = nxt < steps
    all_next = has_next.all(axis=(1, 2)).tolist()
    next_bits = np.negative(has_next, dtype=np.int32)

    bits = s.view(np.int32)
    after = np.empty(s.shape, dtype=np.float32)
    after_bits = after.view(np.int32)
    pick = np.empty(s.shape[1:], dtype=np.int32)
    after[-1] = s[-1]
    for k in range(steps - 2, -1, -1):
        if all_valid[k]:
            after[k] = s[k]
        elif not any_valid[k]:
            after[k] = after[k + 1]
        else:  # after[k] = s[k] where valid, else after[k + 1]
            np.bitwise_xor(after_bits[k + 1], bits[k], out=pick)
            pick &= keep[k]
            np.bitwise_xor(after_bits[k + 1], pick, out=after_bits[k])

    before = after[0].copy()
    before_bits = before.view(np.int32)
    diff = np.empty(s.shape[1:], dtype=np.float32)
    diff_bits = diff.view(np.int32)
    for k in range(steps):
        if all_valid[k]:
            before[...] = s[k]
            continue  # nothing to fill
        if any_valid[k]:  # before = s[k] where valid
            np.bitwise_xor(before_bits, bits[k], out=pick)
            pick &= keep[k]
            before_bits ^= pick
        np.subtract(after[k], before, out=diff)
        if not all_next[k]:
            diff_bits &= next_bits[k]
        diff *= weight[k]
        np.add(before, diff, out=s[k])


def regularise(
    values: np.ndarray, doys: np.ndarray, prep: Preparation
) -> tuple[np.ndarray, np.ndarray]:
    """Irregular masked observations (time, band, sample) → regular series and valid fractions.

    Returns the series on ``prep.grid`` (step, band, sample) and, per sample, the share of
    in-season acquisitions that were valid. Samples below ``prep.min_valid_fraction`` come back
    all-NaN so that callers drop them (preprocess) or leave them unclassified (map).

    Acquisitions are looked up by index rather than copied, and the composite is gap-filled in
    place, so the only full-size allocation is the returned series.
    """
    doys = np.asarray(doys)
    grid = prep.grid
    season = np.flatnonzero(grid.in_season(doys))
    valid_count = np.zeros(values.shape[2:], dtype=np.min_scalar_type(len(season)))
    for t in season:
        valid_count += ~np.isnan(values[t]).any(axis=0)
    fraction = valid_count / len(season) if len(season) else np.zeros(values.shape[2:])
    # Acquisitions out of season fall in no step's window, so the composite can see them all.
    series = composite(values, doys, grid)
    _fill_gaps(series)
    # After filling, a band is NaN at any step only if it is NaN at every step.
    unusable = (fraction < prep.min_valid_fraction) | np.isnan(series[0]).any(axis=0)
    series[:, :, unusable] = np.nan
    return series, fraction.astype(np.float32)


class Normaliser(BaseModel):
    """Per-band standardisation computed on the meta-training (source) regions only."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, x: np.ndarray) -> Normaliser:
        """Fit on series shaped (sample, step, band); values too large for float32 statistics
        give infinite ones (see :attr:`finite`)."""
        flat = x.reshape(-1, x.shape[-1])
        with np.errstate(over="ignore", invalid="ignore"):
            return cls(mean=flat.mean(0).tolist(), std=(flat.std(0) + 1e-6).tolist())

    @property
    def finite(self) -> bool:
        """Whether every statistic is a finite number (the data can be standardised)."""
        return bool(np.isfinite([*self.mean, *self.std]).all())

    def __call__(self, x: np.ndarray, band_axis: int = -1, inplace: bool = False) -> np.ndarray:
        """Standardise series whose bands lie along ``band_axis`` (last by default).

        ``inplace`` overwrites a float32 ``x`` (the map stage hands over its own copy of a
        block, so large blocks need no second buffer).
        """
        shape = [1] * x.ndim
        shape[band_axis] = -1
        mean = np.asarray(self.mean, np.float32).reshape(shape)
        std = np.asarray(self.std, np.float32).reshape(shape)
        out = x if inplace and x.dtype == np.float32 else x.astype(np.float32, copy=True)
        out -= mean
        out /= std
        return out
