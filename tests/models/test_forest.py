"""The random forest held as tensors predicts exactly what scikit-learn's forest predicts, so
the random_forest baseline that is scored is the one `cropmeta adapt --method` saves and maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from cropmeta.models.bundle import load_bundle
from cropmeta.models.forest import FOREST_TENSORS, ForestClassifier


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


def boosted(x: np.ndarray, y: np.ndarray, **settings) -> HistGradientBoostingClassifier:
    settings = {"max_iter": 20, "early_stopping": False, "random_state": 0} | settings
    return HistGradientBoostingClassifier(**settings).fit(x, y)


def labelled(rng, n: int, labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Series (sample, step, band) whose first value says something of the label, with gaps."""
    y = rng.choice(labels, n)
    x = rng.normal(size=(n, 4, 2)).astype(np.float32)
    x[:, 0, 0] += y
    x[::7, 1, 1] = np.nan  # missing values in the fit: splits learn where they go
    x[::11, 0, 0] = np.nan
    return x, y


@pytest.mark.parametrize(
    ("labels", "n_classes", "n", "early_stopping"),
    [
        ([0, 1, 2, 3], 4, 300, False),
        ([0, 1, 2, 3], 4, 300, True),
        ([0, 1, 2], 3, 10_001, "auto"),  # sklearn's default: on above 10000 samples
        ([0, 1], 2, 300, False),
        ([0, 1], 2, 300, True),
        ([0, 2, 3, 5], 6, 300, False),  # classes 1 and 4 of 6 unseen
        ([1, 4], 6, 300, False),  # two seen: binary boosting, the other four unseen
    ],
)
def test_boosting_equals_sklearns(labels, n_classes, n, early_stopping):
    """Raw scores bit for bit; probabilities to the last bit or two of float64 ``exp``."""
    rng = np.random.default_rng(n_classes)
    x, y = labelled(rng, n, labels)
    gb = boosted(x.reshape(n, -1), y, max_iter=30, early_stopping=early_stopping)
    if early_stopping:
        assert gb.n_iter_ < 30  # it did stop early
    query, _ = labelled(rng, 500, labels)
    query[::5, 3, 0] = np.nan  # missing where the fit had none
    flat = query.reshape(500, -1)
    model = ForestClassifier.from_sklearn_boosting(gb, n_classes)
    assert model.head.cfg.combine == ("sigmoid" if len(labels) == 2 else "softmax")
    with torch.no_grad():
        scores = model.head.scores(torch.from_numpy(flat)).numpy()
        proba = model.head(torch.from_numpy(flat)).numpy()
        log_proba = model(torch.from_numpy(query)).numpy()
    seen = gb.classes_
    unseen = np.setdiff1d(np.arange(n_classes), seen)
    raw = scores[:, seen[1]] if len(seen) == 2 else scores[:, seen]
    assert np.array_equal(raw, gb.decision_function(flat))
    np.testing.assert_allclose(proba[:, seen], gb.predict_proba(flat), rtol=0, atol=1e-14)
    assert np.all(proba[:, unseen] == 0) and np.all(np.isneginf(log_proba[:, unseen]))
    assert np.array_equal(log_proba.argmax(-1), gb.predict(flat))
    assert model(torch.from_numpy(query[:0])).shape == (0, n_classes)


def test_boosting_with_categorical_splits_or_one_class_is_refused():
    rng = np.random.default_rng(0)
    x, y = labelled(rng, 100, [0, 1, 2])
    x = x.reshape(100, -1)
    x[:, 2] = rng.integers(0, 4, 100)
    with pytest.raises(ValueError, match="categorical"):
        ForestClassifier.from_sklearn_boosting(boosted(x, y, categorical_features=[2]), 3)
    with pytest.raises(ValueError, match="classes"):
        ForestClassifier.from_sklearn_boosting(boosted(x, np.zeros(100, int)), 3)


def test_a_saved_boosting_loads_as_it_was(tmp_path, meta_model):
    from cropmeta.models.bundle import load_config, save_bundle

    rng = np.random.default_rng(0)
    cfg = load_config(meta_model)
    n_steps, n_bands = len(cfg.preparation.grid), len(cfg.preparation.bands)
    x = rng.normal(size=(60, n_steps, n_bands)).astype(np.float32)
    gb = boosted(x.reshape(60, -1), np.repeat([0, 1, 3], 20), max_iter=5)
    model = ForestClassifier.from_sklearn_boosting(gb, 4)
    save_bundle(model, cfg.model_copy(update={"kind": "adapted"}), tmp_path / "gb")
    loaded, saved_cfg = load_bundle(tmp_path / "gb")
    assert isinstance(loaded, ForestClassifier) and saved_cfg.head.combine == "softmax"
    with torch.no_grad():
        assert torch.equal(loaded(torch.from_numpy(x)), model(torch.from_numpy(x)))


def test_a_forest_saved_before_boosting_loads_as_it_was(tmp_path, meta_model):
    """A config without ``combine`` is a random forest's, with the tensors it always had."""
    from cropmeta.models.bundle import CONFIG, load_config, save_bundle

    rng = np.random.default_rng(1)
    cfg = load_config(meta_model)
    n_steps, n_bands = len(cfg.preparation.grid), len(cfg.preparation.bands)
    x = rng.normal(size=(12, n_steps, n_bands)).astype(np.float32)
    model = ForestClassifier.from_sklearn(fitted(x.reshape(12, -1), np.repeat([0, 1, 2], 4)), 3)
    assert list(model.state_dict()) == [f"head.{name}" for name in FOREST_TENSORS]
    save_bundle(model, cfg.model_copy(update={"kind": "adapted"}), tmp_path / "rf")
    saved = json.loads((tmp_path / "rf" / CONFIG).read_text())
    del saved["head"]["combine"]
    (tmp_path / "rf" / CONFIG).write_text(json.dumps(saved))
    loaded, saved_cfg = load_bundle(tmp_path / "rf")
    assert saved_cfg.head.combine == "mean"
    assert list(loaded.state_dict()) == list(model.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded(torch.from_numpy(x)), model(torch.from_numpy(x)))


def test_compiled_leaves_are_the_tensor_walks_for_forests_and_boosting():
    """scikit-learn's compiled ``Tree.apply`` on trees rebuilt from the stored tensors finds
    the leaf the tensor walk finds, missing values included; the rebuild follows new weights."""
    from cropmeta.models import forest as forest_module

    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.repeat(np.arange(4), 15)
    query = rng.normal(size=(500, 8)).astype(np.float32)
    query[::7, 3] = np.nan
    x_nan = x.copy()
    x_nan[::5, 3] = np.nan  # fitted with missing values: learnt missing_go_to_left
    models = [
        ForestClassifier.from_sklearn(fitted(x_nan, y), 4),
        ForestClassifier.from_sklearn_boosting(boosted(x_nan, y, max_iter=20, random_state=0), 4),
    ]
    flat = torch.from_numpy(query)
    for model in models:
        head = model.head
        assert forest_module.compiled_trees(head, 8) is not None
        compiled = torch.cat(list(head._leaves(flat)))
        leaf = head.branches[:, 0] == torch.arange(len(head.branches))
        assert torch.equal(compiled, head._walk(flat, leaf))
    other = ForestClassifier.from_sklearn(fitted(x, y, seed=1), 4)
    before = models[0].head(flat)
    models[0].head.load_state_dict(other.head.state_dict(), strict=False)
    assert not torch.equal(before, models[0].head(flat))
    assert torch.equal(models[0].head(flat), other.head(flat))
