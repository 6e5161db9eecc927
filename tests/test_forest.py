"""The random forest held as tensors predicts exactly what scikit-learn's forest predicts, so
the random_forest baseline that is scored is the one `cropmeta adapt --method` saves and maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier

from cropmeta.models.bundle import load_bundle
from cropmeta.models.forest import ForestClassifier


def fitted(x: np.ndarray, y: np.ndarray, seed: int = 0) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1).fit(x, y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probabilities_equal_sklearns_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 4, 3)).astype(np.float32)
    y = np.repeat(np.arange(6), 5)
    x[:2] = x[2]  # identical series with other labels: impure leaves, fractional votes
    y[:2] = [3, 4]
    rf = fitted(x.reshape(30, -1), y, seed)
    query = rng.normal(size=(400, 4, 3)).astype(np.float32)
    query[:5] = x[:5]  # training series: ties between classes are likely
    query[5, 1, 2] = np.nan  # a missing value follows the tree's missing_go_to_left
    flat = query.reshape(400, -1)
    model = ForestClassifier.from_sklearn(rf, 6)
    with torch.no_grad():
        proba = model.head(torch.from_numpy(flat)).numpy()
        predicted = model(torch.from_numpy(query)).argmax(-1).numpy()
    assert np.array_equal(proba, rf.predict_proba(flat))
    assert np.array_equal(predicted, rf.predict(flat))
    assert model(torch.from_numpy(query[:0])).shape == (0, 6)  # a block without valid pixels


def test_classes_missing_from_the_fit_get_zero_probability():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 6)).astype(np.float32)
    y = np.repeat([0, 2, 3, 5], 5)  # classes 1 and 4 of 6 unseen
    rf = fitted(x, y)
    model = ForestClassifier.from_sklearn(rf, 6)
    with torch.no_grad():
        proba = model(torch.from_numpy(x)).softmax(-1).numpy()
    assert proba.shape == (20, 6) and np.all(proba[:, [1, 4]] == 0)
    np.testing.assert_allclose(proba[:, [0, 2, 3, 5]], rf.predict_proba(x), atol=1e-6)


def test_a_saved_forest_loads_as_it_was(tmp_path, meta_model):
    from cropmeta.models.bundle import load_config, save_bundle

    rng = np.random.default_rng(0)
    cfg = load_config(meta_model)
    n_steps, n_bands = len(cfg.preparation.grid), len(cfg.preparation.bands)
    x = rng.normal(size=(12, n_steps, n_bands)).astype(np.float32)
    model = ForestClassifier.from_sklearn(fitted(x.reshape(12, -1), np.repeat([0, 1, 2], 4)), 3)
    save_bundle(model, cfg.model_copy(update={"kind": "adapted"}), tmp_path / "rf")
    loaded, saved_cfg = load_bundle(tmp_path / "rf")
    assert isinstance(loaded, ForestClassifier) and saved_cfg.head.kind == "forest"
    with torch.no_grad():
        assert torch.equal(loaded(torch.from_numpy(x)), model(torch.from_numpy(x)))
