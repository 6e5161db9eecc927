"""Transductive self-training (cropmeta.adapt.self_training): FixMatch for networks and
pseudo-labelling for forests, on a synthetic region whose few labels mislead but whose
unlabelled clusters are clear."""

from __future__ import annotations

import inspect

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier

from cropmeta.adapt.self_training import (
    SelfTrainingConfig,
    grid_time_index,
    self_train_forest,
    self_train_network,
    strong_views,
)
from cropmeta.baselines.run import from_scratch
from cropmeta.ingest.prepare import TemporalGrid
from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.forest import ForestClassifier
from cropmeta.tasks.augment import RegionEffects, TaskAugmentation

GRID = TemporalGrid(start_doy=1, end_doy=351, step=10)  # 36 steps, not a full year
DOY = torch.from_numpy(GRID.doys()).long()
PEAKS = (10.0, 17.0, 24.0)  # each class's greenness peak (grid step)
TINY = EncoderConfig(name="tempcnn", hidden=8, embed=8)


def region(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised (NDVI-like, red-like) series of 3 crops: a bell of greenness at the class's
    peak ± 2 steps, of random height, and a red band that also carries a per-sample brightness
    (a nuisance a handful of shots cannot tell from the class)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), per_class)
    t = np.arange(len(GRID))[None]
    peak = np.array(PEAKS)[y][:, None] + rng.uniform(-2, 2, (len(y), 1))
    ndvi = 0.15 + rng.uniform(0.4, 0.9, (len(y), 1)) * np.exp(-0.5 * ((t - peak) / 3) ** 2)
    ndvi += rng.normal(0, 0.03, ndvi.shape)
    red = 0.3 - 0.25 * ndvi + rng.normal(0, 0.02, ndvi.shape) + rng.uniform(-0.06, 0.06, peak.shape)
    x = (np.stack([ndvi, red], -1) - [0.4, 0.2]) / [0.25, 0.06]
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)


X_U, _ = region(300, seed=1)  # the unlabelled target samples (their labels are dropped)
X_TEST, Y_TEST = region(200, seed=2)  # held out


def accuracy(model: torch.nn.Module) -> float:
    with torch.no_grad():
        return (model(X_TEST, DOY).argmax(-1) == Y_TEST).float().mean().item()


def forest_fit(calls: list | None = None):
    """A real random forest (sample weights honoured) held as tensors; ``calls`` records what
    each fit received."""

    def fit(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> ForestClassifier:
        if calls is not None:
            calls.append((x, y, weight))
        rf = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
        rf.fit(x.numpy().reshape(len(x), -1), y.numpy(), sample_weight=weight.numpy())
        return ForestClassifier.from_sklearn(rf, 3)

    return fit


FOREST_CFG = SelfTrainingConfig(rounds=3, max_unlabelled=600)


def test_pseudo_labelling_lifts_a_forest_on_two_shots_per_class():
    x_s, y_s = region(2, seed=11)
    calls: list = []
    model, record = self_train_forest(forest_fit(calls), x_s, y_s, X_U, DOY, FOREST_CFG, seed=0)
    before = accuracy(forest_fit()(x_s, y_s, torch.ones(len(y_s))))
    after = accuracy(model)
    assert after >= before + 0.1, (before, after)  # 0.86 → 1.0 when written
    assert after >= 0.95
    assert record.seen == [600, 600, 600] and len(record.per_class) == 3
    assert all(min(counts) > 0 for counts in record.per_class)  # no class left out
    # the caller's fit gets the support first (weight 1), then the pseudo-labels (weight λ)
    assert len(calls) == 4 and torch.equal(calls[0][0], x_s)
    x, y, w = calls[-1]
    n = len(y_s)
    assert torch.equal(x[:n], x_s) and torch.equal(y[:n], y_s) and bool((w[:n] == 1).all())
    assert len(y) == n + sum(record.per_class[-1]) and bool((w[n:] == 1.0).all())
    assert "pseudo-labels per round" in record.note()


def test_forest_self_training_is_deterministic_for_a_seed():
    x_s, y_s = region(2, seed=11)
    cfg = FOREST_CFG.model_copy(update={"rounds": 1})
    runs = [self_train_forest(forest_fit(), x_s, y_s, X_U, DOY, cfg, seed=4) for _ in range(2)]
    with torch.no_grad():
        assert torch.equal(runs[0][0](X_TEST, DOY), runs[1][0](X_TEST, DOY))
    assert runs[0][1] == runs[1][1]


NET_CFG = SelfTrainingConfig(rounds=2, steps=60, lr=3e-3, batch_size=128, max_unlabelled=600)


def one_shot_network() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    x_s, y_s = region(1, seed=13)
    return from_scratch(x_s, y_s, DOY, 3, TINY, seed=0, epochs=100, lr=1e-2), x_s, y_s


def test_fixmatch_lifts_a_network_and_leaves_the_argument_alone():
    model, x_s, y_s = one_shot_network()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    trained, record = self_train_network(model, x_s, y_s, X_U, DOY, NET_CFG, seed=0)
    before, after = accuracy(model), accuracy(trained)
    assert after >= before + 0.1, (before, after)  # 0.86 → 1.0 when written
    assert not trained.training and trained is not model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert record.seen == [600, 600] and sum(record.per_class[-1]) > 0


def test_fixmatch_is_deterministic_for_a_seed():
    model, x_s, y_s = one_shot_network()
    cfg = NET_CFG.model_copy(update={"rounds": 1, "steps": 10})
    a, rec_a = self_train_network(model, x_s, y_s, X_U, DOY, cfg, seed=5)
    b, rec_b = self_train_network(model, x_s, y_s, X_U, DOY, cfg, seed=5)
    c, _ = self_train_network(model, x_s, y_s, X_U, DOY, cfg, seed=6)
    with torch.no_grad():
        assert torch.equal(a(X_TEST, DOY), b(X_TEST, DOY))
        assert not torch.equal(a(X_TEST, DOY), c(X_TEST, DOY))
    assert rec_a == rec_b


def test_strong_views_draw_region_effects_per_sample():
    index = RegionEffects(TaskAugmentation(), GRID).time_index
    assert all(np.array_equal(grid_time_index(DOY)(s), index(s)) for s in (-3, 0, 2))
    x = X_U[:50]
    cfg = SelfTrainingConfig(shift_steps=2, gain=0.0, offset=0.0)
    out = strong_views(x, np.random.default_rng(0), index, cfg)
    shifts = []
    for i in range(len(x)):  # each sample is its series moved by one whole shift in [-2, 2]
        match = [s for s in range(-2, 3) if torch.equal(out[i], x[i, index(s)])]
        assert match
        shifts.append(match[0])
    assert len(set(shifts)) > 1  # ... drawn per sample
    cfg = SelfTrainingConfig(shift_steps=0, gain=0.2, offset=0.0)
    ratio = strong_views(x, np.random.default_rng(0), index, cfg) / x
    per_band = ratio[:, 0]  # one gain per sample and band, within 1 ± 0.2
    torch.testing.assert_close(ratio, per_band[:, None].expand_as(ratio))
    assert bool(((per_band - 1).abs() <= 0.2).all()) and per_band[:, 0].std() > 0


def test_no_function_receives_labels_of_the_unlabelled_samples():
    for fn in (self_train_network, self_train_forest):
        params = list(inspect.signature(fn).parameters)
        assert "x_unlabelled" in params
        assert not [p for p in params if p.startswith("y_") and p != "y_support"]


def test_without_unlabelled_samples_the_support_fit_comes_back():
    x_s, y_s = region(2, seed=11)
    none = X_U[:0]
    calls: list = []
    forest, record = self_train_forest(forest_fit(calls), x_s, y_s, none, DOY, FOREST_CFG)
    assert len(calls) == 1 and record.seen == [] and record.per_class == []
    model, x_s, y_s = one_shot_network()
    net, record = self_train_network(model, x_s, y_s, none, DOY, NET_CFG)
    with torch.no_grad():
        assert torch.equal(net(X_TEST, DOY), model(X_TEST, DOY)) and record.seen == []
