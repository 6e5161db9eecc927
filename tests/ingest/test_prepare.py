"""The shared preparation path: masking, compositing, gap filling, normalisation."""

import numpy as np
import pytest

from cropmeta.ingest import prepare
from cropmeta.ingest.prepare import (
    Normaliser,
    Preparation,
    TemporalGrid,
    composite,
    interpolate_gaps,
    mask_invalid,
    regularise,
)


def test_mask_invalid_scales_and_masks_scl_and_nodata():
    dn = np.array([[[1000, 3000, 0]], [[1500, 6000, 0]]], dtype=np.uint16)  # band, 1, 3
    scl = np.array([[4, 9, 4]])
    out = mask_invalid(dn, np.array([1e-4, 1e-4]), np.array([-0.1, -0.1]), 0, scl, (9,))
    assert out[:, 0, 0] == pytest.approx([0.0, 0.05], abs=1e-6)
    assert np.isnan(out[:, 0, 1]).all()  # cloud
    assert np.isnan(out[:, 0, 2]).all()  # nodata


def test_composite_averages_valid_acquisitions_per_step():
    grid = TemporalGrid(start_doy=10, end_doy=30, step=10)
    values = np.array([1.0, 3.0, np.nan, 7.0], np.float32).reshape(4, 1, 1)
    out = composite(values, np.array([8, 12, 21, 40]), grid)
    assert out[0, 0, 0] == pytest.approx(2.0)  # 8 and 12 fall in the step centred on 10
    assert np.isnan(out[1:, 0, 0]).all()  # 21 is masked, 40 is outside


def test_interpolate_gaps_is_linear_and_holds_ends():
    s = np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan], np.float32).reshape(6, 1, 1)
    assert interpolate_gaps(s)[:, 0, 0] == pytest.approx([1, 1, 2, 3, 4, 4])
    assert np.isnan(interpolate_gaps(np.full((3, 1, 1), np.nan, np.float32))).all()


def test_regularise_drops_samples_with_too_few_valid_observations():
    prep = Preparation(
        bands=["b"], grid=TemporalGrid(start_doy=10, end_doy=50, step=10), min_valid_fraction=0.5
    )
    doys = np.array([10, 20, 30, 40, 50])
    good = np.array([1, 2, np.nan, 4, 5], np.float32)
    cloudy = np.array([np.nan, np.nan, np.nan, 4, np.nan], np.float32)
    values = np.stack([good, cloudy], axis=-1)[:, None, :]
    series, fraction = regularise(values, doys, prep)
    assert series[:, 0, 0] == pytest.approx([1, 2, 3, 4, 5])
    assert np.isnan(series[:, :, 1]).all()
    assert fraction == pytest.approx([0.8, 0.2])


def test_normaliser_standardises_per_band():
    x = np.random.default_rng(0).normal([1.0, 5.0], [2.0, 0.5], size=(200, 7, 2))
    z = Normaliser.fit(x)(x)
    assert z.reshape(-1, 2).mean(0) == pytest.approx([0, 0], abs=1e-5)
    assert z.reshape(-1, 2).std(0) == pytest.approx([1, 1], abs=1e-3)


def test_grid_across_new_year():
    """A Mato Grosso-like season, September to August, composites across 1 January."""
    grid = TemporalGrid(start_doy=250, end_doy=240, step=16)
    assert grid.doys()[0] == 250 and grid.doys()[-1] <= 240
    assert (np.diff(grid.offsets()) == 16).all()
    doys = np.array([250, 360, 5, 100, 240])
    assert grid.in_season(doys).all()
    assert list(grid.position(doys)) == [0, 110, 120, 215, 355]
    values = np.arange(5, dtype=np.float32).reshape(5, 1, 1)
    series, fraction = regularise(values, doys, Preparation(bands=["ndvi"], grid=grid))
    assert fraction[0] == 1 and not np.isnan(series).any()
    assert series[0, 0, 0] == 0 and series[-1, 0, 0] == pytest.approx(4, abs=0.5)


def _reference_regularise(values, doys, prep):
    """Slow, obvious restatement of ``regularise``: per step, band and sample loops + np.interp."""
    grid = prep.grid
    steps, half = grid.offsets(), grid.step / 2
    pos = grid.position(doys)
    season = grid.in_season(doys)
    n_time, n_bands, n_samples = values.shape
    comp = np.full((len(steps), n_bands, n_samples), np.nan)
    for i, centre in enumerate(steps):
        members = [t for t in range(n_time) if -half <= pos[t] - centre < half]
        for b in range(n_bands):
            for j in range(n_samples):
                obs = [values[t, b, j] for t in members if not np.isnan(values[t, b, j])]
                if obs:
                    comp[i, b, j] = np.mean(obs)
    filled = np.full_like(comp, np.nan)
    for b in range(n_bands):
        for j in range(n_samples):
            ok = ~np.isnan(comp[:, b, j])
            if ok.any():
                k = np.arange(len(steps))
                filled[:, b, j] = np.interp(k, k[ok], comp[ok, b, j])
    n_season = season.sum()
    fraction = np.zeros(n_samples)
    for j in range(n_samples):
        good = [t for t in range(n_time) if season[t] and not np.isnan(values[t, :, j]).any()]
        fraction[j] = len(good) / n_season if n_season else 0.0
    drop = (fraction < prep.min_valid_fraction) | np.isnan(filled).any(axis=(0, 1))
    series = filled.copy()
    series[:, :, drop] = np.nan
    return comp, filled, series, fraction


@pytest.mark.parametrize("shared_mask", [True, False])
def test_regularise_matches_slow_reference(monkeypatch, shared_mask):
    """Random gappy series: several dates per step, dates out of season, gaps at both ends,
    samples (and single bands) with no valid step; cloud-like masks shared by all bands, or not.
    Small slabs make the fast path cross many slab boundaries."""
    monkeypatch.setattr(prepare, "_SLAB_CELLS", 21)
    rng = np.random.default_rng(42)
    prep = Preparation(
        bands=["a", "b", "c"],
        grid=TemporalGrid(start_doy=60, end_doy=200, step=10),
        min_valid_fraction=0.2,
    )
    doys = np.array([20, 58, 61, 63, 64, 80, 95, 101, 104, 133, 150, 152, 171, 205, 206, 240])
    n_time, n_bands, n_samples = len(doys), 3, 70
    values = rng.normal(0.3, 0.1, size=(n_time, n_bands, n_samples)).astype(np.float32)
    clear = values.copy()
    if shared_mask:
        cloud = rng.random((n_time, n_samples)) < 0.5
        values[np.broadcast_to(cloud[:, None], values.shape)] = np.nan
    else:
        values[rng.random(values.shape) < 0.4] = np.nan
    values[:, :, 0] = np.nan  # never observed
    values[:, 1, 1] = np.nan  # one band never observed
    values[:, :, 2:4] = clear[:, :, 2:4]
    values[doys < 110, :, 2] = np.nan  # leading gap
    values[doys > 130, :, 3] = np.nan  # trailing gap
    values[:, :, 4] = np.nan
    values[9, :, 4] = 0.5  # a single valid date
    comp, filled, expected, fraction = _reference_regularise(values, doys, prep)

    fast_comp = composite(values, doys, prep.grid)
    assert np.array_equal(np.isnan(fast_comp), np.isnan(comp))
    assert np.allclose(fast_comp, comp, atol=1e-6, equal_nan=True)
    fast_filled = interpolate_gaps(comp.astype(np.float32))
    assert np.array_equal(np.isnan(fast_filled), np.isnan(filled))
    assert np.allclose(fast_filled, filled, atol=1e-6, equal_nan=True)
    assert fast_filled[:, :, 4] == pytest.approx(np.full((len(comp), n_bands), 0.5))
    series, frac = regularise(values, doys, prep)
    assert series.dtype == np.float32 and frac.dtype == np.float32
    assert np.array_equal(np.isnan(series), np.isnan(expected))
    assert np.allclose(series, expected, atol=1e-6, equal_nan=True)
    assert np.allclose(frac, fraction, atol=1e-7)
    assert np.isnan(series[:, :, :2]).all()
    assert not np.isnan(series[:, :, 2:4]).any()


@pytest.mark.parametrize("steps", [1, 7, 200])
def test_interpolate_gaps_matches_np_interp(monkeypatch, steps):
    """Per-cell masks (not shared across bands), long grids needing int16 step indices."""
    monkeypatch.setattr(prepare, "_SLAB_CELLS", 13)
    rng = np.random.default_rng(steps)
    series = rng.normal(size=(steps, 2, 40)).astype(np.float32)
    series[rng.random(series.shape) < 0.7] = np.nan
    series[:, 0, 0] = np.nan
    original = series.copy()
    out = interpolate_gaps(series)
    assert np.array_equal(series, original, equal_nan=True)  # input untouched
    k = np.arange(steps)
    for b in range(2):
        for j in range(40):
            ok = ~np.isnan(series[:, b, j])
            if ok.any():
                want = np.interp(k, k[ok], series[ok, b, j].astype(np.float64))
                assert np.allclose(out[:, b, j], want, atol=1e-6)
            else:
                assert np.isnan(out[:, b, j]).all()
