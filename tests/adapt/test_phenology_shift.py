"""Phenology-shift alignment (cropmeta.adapt.phenology_shift): TimeMatch's estimate of how many
grid steps later the target's crops grow, and its sign convention, on a synthetic calendar."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cropmeta.adapt.phenology_shift import (
    aligning_index,
    am_score,
    estimate_shift,
    shift_series,
)
from cropmeta.baselines.run import random_forest
from cropmeta.ingest.prepare import TemporalGrid
from cropmeta.tasks.augment import RegionEffects, TaskAugmentation

GRID = TemporalGrid(start_doy=1, end_doy=351, step=10)  # 36 steps, ends held (not a full year)
DOY = torch.from_numpy(GRID.doys()).long()
TIME_INDEX = RegionEffects(TaskAugmentation(), GRID).time_index
PEAKS = (10.0, 17.0, 24.0)  # each class's greenness peak in the sources (grid step)
PRIOR = np.array([1.0, 1.0, 1.0])  # the sources' class counts (normalised by estimate_shift)


def region(per_class: int, delay: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised (NDVI-like, red-like) series of 3 crops whose greenness peaks ``delay``
    steps after the sources' peaks (± 1.5 steps per field). The delay is built into the
    curves, not applied with ``time_index``, so the test does not assume the convention."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), per_class)
    t = np.arange(len(GRID))[None]
    peak = np.array(PEAKS)[y][:, None] + delay + rng.uniform(-1.5, 1.5, (len(y), 1))
    ndvi = 0.15 + rng.uniform(0.5, 0.8, (len(y), 1)) * np.exp(-0.5 * ((t - peak) / 3) ** 2)
    ndvi += rng.normal(0, 0.03, ndvi.shape)
    red = 0.3 - 0.25 * ndvi + rng.normal(0, 0.02, ndvi.shape)
    x = (np.stack([ndvi, red], -1) - [0.4, 0.2]) / [0.25, 0.06]
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)


@pytest.fixture(scope="module")
def source_model():
    """A real random forest trained on the sources' calendar."""
    x, y = region(60, delay=0, seed=0)
    return random_forest(x, y, 3, seed=0)


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x, DOY).argmax(-1) == y).float().mean().item()


def proba_of(model):
    return lambda x: model(x, DOY).exp()


def test_a_target_three_steps_later_is_estimated_plus_three_and_aligned(source_model):
    x_t, y_t = region(150, delay=3, seed=1)
    est = estimate_shift(proba_of(source_model), x_t, PRIOR, TIME_INDEX, max_shift=5)
    assert est.shift == 3 and est.supervised is None
    assert est.candidates == list(range(-5, 6)) and len(est.score) == 11
    assert est.score == est.unsupervised and np.argmin(est.score) == est.candidates.index(3)
    aligned = shift_series(x_t, aligning_index(TIME_INDEX, est.shift))
    torch.testing.assert_close(aligned, x_t[:, TIME_INDEX(-3)])  # later target: move it back
    raw, fixed = accuracy(source_model, x_t, y_t), accuracy(source_model, aligned, y_t)
    assert raw < 0.9 and fixed >= 0.97 and fixed - raw >= 0.1, (raw, fixed)  # 0.81 → 1.0
    # the opposite move makes it worse: the sign is not a coin flip
    wrong = shift_series(x_t, aligning_index(TIME_INDEX, -3))
    assert accuracy(source_model, wrong, y_t) < raw


def test_support_labels_add_a_supervised_score(source_model):
    x_t, _ = region(150, delay=-2, seed=2)  # an earlier target
    x_s, y_s = region(2, delay=-2, seed=3)
    est = estimate_shift(proba_of(source_model), x_t, PRIOR, TIME_INDEX, 4, x_s, y_s)
    assert est.shift == -2 and est.supervised is not None
    np.testing.assert_allclose(est.score, np.add(est.unsupervised, est.supervised))
    assert np.argmin(est.supervised) == est.candidates.index(-2)


def test_a_target_on_the_sources_calendar_stays_put(source_model):
    x_t, _ = region(150, delay=0, seed=4)
    x_s, y_s = region(2, delay=0, seed=5)
    assert estimate_shift(proba_of(source_model), x_t, PRIOR, TIME_INDEX, 4).shift == 0
    assert estimate_shift(proba_of(source_model), x_t, PRIOR, TIME_INDEX, 4, x_s, y_s).shift == 0


def test_ties_go_to_the_smallest_shift_and_subsampling_is_seeded():
    flat = lambda x: torch.full((len(x), 3), 1 / 3)  # noqa: E731 — a model that sees nothing
    x_t, _ = region(10, delay=0, seed=6)
    est = estimate_shift(flat, x_t, PRIOR, TIME_INDEX, 3, max_unlabelled=7, seed=1)
    assert est.shift == 0 and len(set(est.score)) == 1
    assert am_score(np.eye(3)[[0, 1, 2, 0, 1, 2]], np.ones(3) / 3) == pytest.approx(0, abs=1e-4)


def test_labels_rescue_the_estimate_when_the_class_mix_differs_from_the_sources(source_model):
    """The AM score assumes the target's class mix is the sources'; nine tenths of one crop
    mislead it (it picks a wrong shift), and the support's likelihood puts it right."""
    x_t, y_t = region(300, delay=3, seed=1)
    keep = torch.cat(
        [torch.nonzero(y_t == c).flatten()[:n] for c, n in ((0, 300), (1, 15), (2, 15))]
    )
    x_s, y_s = region(2, delay=3, seed=3)
    predict = proba_of(source_model)
    assert estimate_shift(predict, x_t[keep], PRIOR, TIME_INDEX, 5).shift != 3
    assert estimate_shift(predict, x_t[keep], PRIOR, TIME_INDEX, 5, x_s, y_s).shift == 3
