"""Cross-validation on the labelled fields (`cropmeta adapt --cv K`): every method's estimate
from the user's labels alone, out of fold, and refused where a fold would lack a class."""

from __future__ import annotations

import json

import numpy as np
import pytest
from checks import assert_one_line_error

from cropmeta.adapt.cross_validate import (
    PriorShift,
    best_method,
    check_folds,
    cross_validate,
    macro_f1_se,
)
from cropmeta.baselines.names import BASELINES
from cropmeta.errors import InputError

METHODS = {"maml", *BASELINES}


def test_every_label_is_predicted_once_by_a_fit_that_never_saw_it():
    y = np.repeat(np.arange(3), 5)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def fit_predict(train, test):
        seen.append((train, test))
        assert not set(train) & set(test)
        assert set(np.unique(y[test])) == {0, 1, 2}  # stratified: every class in every fold
        majority = np.bincount(y[train]).argmax()
        return {"oracle": y[test], "majority": np.full(len(test), majority)}

    scores = cross_validate(fit_predict, y, folds=5, seed=0)
    tests = np.concatenate([test for _, test in seen])
    assert len(seen) == 5 and sorted(tests) == list(range(len(y)))
    assert scores["oracle"]["overall_accuracy"] == 1.0 and scores["oracle"]["kappa"] == 1.0
    assert scores["majority"]["overall_accuracy"] < 1.0
    assert scores["oracle"]["macro_f1_se"] == 0.0 < scores["majority"]["macro_f1_se"]
    again = cross_validate(fit_predict, y, folds=5, seed=0)
    assert again == scores


def test_methods_are_scored_for_the_region_under_its_estimated_priors():
    """With unlabelled samples behind every fold's test samples, the region's priors are
    estimated by black-box shift estimation, and every method (and its ``+bbse`` re-weighting)
    is also scored with the support weighted to those priors: a method that always says the
    commonest crop scores that crop's share, not a third."""
    y = np.repeat(np.arange(3), 6)
    region = np.repeat(np.arange(3), [70, 20, 10])  # the unlabelled samples' (unread) classes
    eye = np.eye(3)

    def fit_predict(train, test):
        rows = np.concatenate([y[test], region])
        return {"oracle": eye[rows], "commonest": np.zeros(len(rows), int)}

    shift = PriorShift(len(region), lambda method: np.full(3, 1 / 3))
    scores = cross_validate(fit_predict, y, folds=3, seed=0, shift=shift)
    assert np.allclose(shift.prior, [0.7, 0.2, 0.1], atol=1e-6)
    assert scores["commonest"]["overall_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert scores["commonest"]["weighted_accuracy"] == pytest.approx(0.7, abs=1e-4)
    assert scores["oracle"]["weighted_accuracy"] == scores["oracle"]["weighted_macro_f1"] == 1.0
    assert {"oracle+bbse", "commonest+bbse"} <= set(scores)
    assert best_method(scores) in ("oracle", "oracle+bbse")
    given = PriorShift(len(region), shift.train_prior, np.array([0.2, 0.2, 0.6]))
    again = cross_validate(fit_predict, y, folds=3, seed=0, shift=given)
    assert list(given.prior) == [0.2, 0.2, 0.6]  # a given estimate is used, not replaced
    assert again["commonest"]["weighted_accuracy"] == pytest.approx(0.2, abs=1e-4)


def test_the_macro_f1_error_is_scikit_learns_f1_over_stratified_resamples():
    """The vectorised bootstrap equals scikit-learn's ``f1_score`` on the same resamples, and
    shrinks as 1/sqrt(n) with more labelled samples."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 10)
    guess = np.where(rng.random(40) < 0.7, y, rng.integers(0, 4, 40))
    draw = np.random.default_rng(0)  # the resamples macro_f1_se(seed=0) draws
    members = [np.flatnonzero(y == c) for c in range(4)]
    picks = np.concatenate([draw.choice(m, size=(200, len(m))) for m in members], axis=1)
    spread = np.std([f1_score(y[i], guess[i], average="macro") for i in picks], ddof=1)
    assert macro_f1_se(y, guess, seed=0) == pytest.approx(spread, rel=1e-9)
    more = macro_f1_se(np.tile(y, 16), np.tile(guess, 16), seed=0)
    assert more == pytest.approx(spread / 4, rel=0.3)


def test_folds_need_as_many_labels_in_every_class():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    check_folds(y, 2, ["maize", "wheat", "rye"], "region.zarr")
    with pytest.raises(InputError, match="3 folds needs 3 labelled samples .*; rye has 2"):
        check_folds(y, 3, ["maize", "wheat", "rye"], "region.zarr")


@pytest.mark.slow
def test_adapt_cross_validates_learner_and_baselines(meta_model, regions, catalog, tmp_path):
    """With shots: the query evaluation and the support set's cross-validation side by side,
    the same methods in both, recorded in the adapted model; the same seed repeats it."""
    from cropmeta.adapt.adapt import adapt_region

    target = regions[catalog.targets()[0].name]
    first = adapt_region(
        meta_model, target, tmp_path / "a", shots=3, seed=2, cv_folds=3, forest_trees=30
    )
    plain = {m for m in first.metrics if "+" not in m}
    reweighted = {f"{m}+bbse" for m in plain}  # the only corrections cross-validated
    assert first.cv_folds == 3 and set(first.cv_metrics) == plain | reweighted
    assert plain == METHODS and reweighted <= set(first.metrics)
    assert len(first.class_prior) == len(first.classes) and abs(sum(first.class_prior) - 1) < 1e-4
    for m in first.cv_metrics.values():
        assert 0 <= m["overall_accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
    assert first.metrics != first.cv_metrics  # scored on other samples
    history = json.loads((tmp_path / "a" / "config.json").read_text())["history"]
    assert history["adaptation"]["cv_metrics"] == first.cv_metrics
    again = adapt_region(
        meta_model, target, tmp_path / "b", shots=3, seed=2, cv_folds=3, forest_trees=30
    )
    assert again.cv_metrics == first.cv_metrics


@pytest.mark.slow
def test_adapt_cli_cross_validates_in_production(cli, meta_model, regions, catalog, tmp_path):
    """Without --shots (every label is support, nothing is held out) --cv is the only estimate:
    a table beside the written model, and the figures in --json."""
    target = regions[catalog.targets()[1].name]
    args = ("adapt", "--model", meta_model, "--region", target, "--cv", "2", "--forest-trees", "30")
    res = cli(*args, "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    assert "cross-validated on the" in res.stderr and "random_forest" in res.stderr
    res = cli(*args, "--out", tmp_path / "b", "--json")
    result = json.loads(res.stdout)
    assert not result["metrics"] and set(result["cv_metrics"]) == METHODS


def test_adapt_refuses_more_folds_than_labels(cli, meta_model, regions, catalog, tmp_path):
    target = regions[catalog.targets()[0].name]
    out = tmp_path / "a"
    args = ("adapt", "--model", meta_model, "--region", target, "--shots", "3", "--cv", "4")
    res = cli(*args, "--out", out)
    assert_one_line_error(res, out, "cross-validation in 4 folds needs 4 labelled samples")
    res = cli("adapt", "--model", meta_model, "--region", target, "--cv", "1", "--out", out)
    assert res.exit_code == 2 and not out.exists()
