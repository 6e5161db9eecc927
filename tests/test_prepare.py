"""The shared preparation path: masking, compositing, gap filling, normalisation."""

import numpy as np
import pytest

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
