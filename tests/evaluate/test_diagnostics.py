"""Diagnostics of cropmeta.evaluate.diagnostics: task variability, adaptation gain,
meta-overfitting and meta-underfitting, on synthetic arrays, hand-made histories and scores,
and on the tiny world's preprocessed regions."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from cropmeta.evaluate.diagnostics import (
    LAST_TRAINING,
    OVERFIT_GAP,
    adaptation_gain,
    adaptation_gain_sentence,
    chance_level,
    class_conditional_distances,
    median_bandwidth,
    meta_fit_gap,
    meta_fit_gap_sentence,
    meta_underfitting,
    meta_underfitting_sentence,
    mmd2_unbiased,
    task_variability_summary,
)
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.ingest.prepare import Normaliser, Preparation, TemporalGrid

BANDS = ["B02", "B03", "B04", "B08"]
PREP = Preparation(bands=BANDS)
STEPS = len(PREP.grid)


def curves(code: int, shift: float = 0.0) -> np.ndarray:
    """A class's mean series (step, band): a seasonal bump whose timing depends on the class;
    ``shift`` moves the peak later and brightens the soil, as a region shift would."""
    t = np.linspace(0, 1, STEPS)[:, None]
    peak = 0.3 + 0.1 * code + shift
    bump = np.exp(-((t - peak) ** 2) / 0.02)
    return 0.1 + 0.05 * shift + bump * np.linspace(0.1, 0.5, len(BANDS))[None, :]


def region(
    name: str,
    seed: int,
    counts: dict[int, int],
    shift: float = 0.0,
    prep: Preparation = PREP,
    n_bands: int = len(BANDS),
) -> RegionArrays:
    """A region drawn from per-class Gaussian noise around :func:`curves`."""
    rng = np.random.default_rng(seed)
    steps = len(prep.grid)
    xs, codes = [], []
    for code, n in counts.items():
        mean = curves(code, shift)
        mean = np.resize(mean, (steps, n_bands)) if mean.shape != (steps, n_bands) else mean
        xs.append(mean[None] + rng.normal(0, 0.04, (n, steps, n_bands)))
        codes.append(np.full(n, code))
    return RegionArrays(
        name=name,
        x=np.concatenate(xs).astype(np.float32),
        codes=np.concatenate(codes).astype(np.int64),
        doy=prep.grid.doys().astype(np.int32),
        preparation=prep,
        classes={c: {"code": c, "name": f"crop{c}", "count": n} for c, n in counts.items()},
    )


@pytest.fixture(scope="module")
def synthetic() -> dict[str, RegionArrays]:
    counts = {1: 60, 2: 80, 3: 40}
    return {
        "a": region("a", 1, counts),
        "b": region("b", 2, counts),  # same distribution as a
        "far": region("far", 3, counts, shift=0.15),  # shifted
    }


@pytest.fixture(scope="module")
def normaliser(synthetic) -> Normaliser:
    return Normaliser.fit(np.concatenate([synthetic["a"].x, synthetic["b"].x]))


# ------------------------------------------------------------------------- the distance itself


def test_mmd2_unbiased_matches_a_brute_force_sum():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(1, 1, size=(7, 3))
    s = 1.3

    def k(u, v):
        return math.exp(-float(((u - v) ** 2).sum()) / (2 * s * s))

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(7) for j in range(7) if i != j) / 42
    xy = sum(k(a, b) for a in x for b in y) / 35
    assert mmd2_unbiased(x, y, s) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    with pytest.raises(ValueError):
        mmd2_unbiased(x[:1], y, s)


def test_mmd2_unbiased_has_no_small_sample_bias():
    """Same distribution, 5 vs 8 samples: the mean over draws is ≈ 0 (a biased estimator
    would give ≈ (1/5 + 1/8)(1 - E k) ≈ 0.2 here), so small classes do not look far."""
    rng = np.random.default_rng(1)
    values = [
        mmd2_unbiased(rng.normal(size=(5, 20)), rng.normal(size=(8, 20)), math.sqrt(40))
        for _ in range(400)
    ]
    assert abs(np.mean(values)) < 0.01
    assert min(values) < 0 < max(values)


def test_median_bandwidth_is_the_median_pairwise_distance():
    x = np.array([[0.0], [1.0], [3.0]])  # distances 1, 2, 3
    assert median_bandwidth(x) == pytest.approx(2.0)
    assert median_bandwidth(np.zeros((4, 2))) == 1.0


# ------------------------------------------------------------------------- task variability


def test_shifted_region_is_farther_than_one_from_the_same_distribution(synthetic, normaliser):
    d = class_conditional_distances(synthetic, normaliser)
    same, shifted = d.between("a", "b"), d.between("a", "far")
    assert d.regions == ["a", "b", "far"]
    assert d.n_shared("a", "b") == d.n_shared("a", "far") == 3
    assert shifted > 0.1
    assert shifted > 10 * abs(same)
    assert d.between("b", "far") > 10 * abs(same)
    # the within-region reference (two halves of one class) is small: sampling noise only
    for r in synthetic:
        assert abs(d.within[r]) < 0.05 * shifted
        assert d.matrix[d.index(r), d.index(r)] == d.within[r]
        assert set(d.within_per_class[r]) == {1, 2, 3}
    assert np.allclose(d.matrix, d.matrix.T, equal_nan=True)
    assert set(d.per_class[("a", "far")]) == {1, 2, 3}
    assert d.between("a", "far") == pytest.approx(np.mean(list(d.per_class[("a", "far")].values())))
    # one kernel per class for all regions, so figures of a class are comparable
    assert d.bandwidth["a"] == d.bandwidth["far"]
    json.dumps(d.to_dict(), allow_nan=False)


def test_distances_are_deterministic_and_independent_of_region_order(synthetic, normaliser):
    d1 = class_conditional_distances(synthetic, normaliser, seed=5)
    d2 = class_conditional_distances(dict(reversed(list(synthetic.items()))), normaliser, seed=5)
    for a, b in [("a", "b"), ("a", "far"), ("b", "far")]:
        assert d1.between(a, b) == pytest.approx(d2.between(a, b), rel=1e-12)
        assert d1.per_class[(a, b)] == pytest.approx(d2.per_class[(b, a)], rel=1e-12)
    assert d1.within == d2.within


def test_subsampling_caps_samples_per_class(normaliser):
    big = {"p": region("p", 10, {1: 900}), "q": region("q", 11, {1: 900})}
    t0 = time.perf_counter()
    capped = class_conditional_distances(big, normaliser, max_per_class=50)
    fast = time.perf_counter() - t0
    full = class_conditional_distances(big, normaliser, max_per_class=900)
    # with fewer samples the estimate differs (another subset) but stays near zero
    assert capped.between("p", "q") != full.between("p", "q")
    assert abs(capped.between("p", "q")) < 0.05
    assert fast < 5


def test_shared_classes_and_small_classes(normaliser):
    regions = {
        "a": region("a", 1, {1: 30, 2: 30, 3: 3}),  # class 3 too small in a
        "b": region("b", 2, {2: 30, 3: 30}),
    }
    d = class_conditional_distances(regions, normaliser)
    assert d.n_shared("a", "b") == 1
    assert set(d.per_class[("a", "b")]) == {2}
    assert set(d.within_per_class["a"]) == {1, 2}
    assert d.shared[0, 0] == 2
    with pytest.raises(ValueError):
        class_conditional_distances(regions, normaliser, min_per_class=3)


def test_regions_with_other_preparations_are_not_comparable(synthetic, normaliser):
    other_grid = Preparation(bands=BANDS, grid=TemporalGrid(start_doy=60, end_doy=300, step=20))
    regions = {
        **synthetic,
        "coarse": region("coarse", 4, {1: 30, 2: 30}, prep=other_grid),
        "fewbands": region("fewbands", 5, {1: 30}, prep=Preparation(bands=BANDS[:3]), n_bands=3),
    }
    d = class_conditional_distances(regions, normaliser)
    assert "temporal grids differ" in d.reason("a", "coarse")
    assert d.reason("coarse", "a") == d.reason("a", "coarse")
    assert "normaliser" in d.reason("a", "fewbands")
    assert math.isnan(d.between("a", "coarse")) and d.n_shared("a", "coarse") == 0
    assert math.isnan(d.between("fewbands", "b"))
    assert d.reason("a", "b") is None and d.between("a", "far") > 0.1
    # a region alone in its group still gets its within-region reference
    assert math.isfinite(d.within["coarse"])
    text = task_variability_summary(d, ["a", "b"], "coarse")
    assert "cannot be compared" in text and "temporal grids differ" in text


def test_summary_says_a_shifted_target_is_farther(synthetic, normaliser):
    d = class_conditional_distances(synthetic, normaliser)
    text = task_variability_summary(d, ["a", "b"], "far")
    assert "The target far is at mean distance" in text
    assert "farther from the sources than the sources are from each other" in text
    assert "transfer less well" in text
    assert "sampling noise" in text  # the sources differ only by noise


def test_summary_for_a_target_like_the_sources(normaliser):
    counts = {1: 60, 2: 60}
    d = class_conditional_distances(
        {
            "s1": region("s1", 1, counts),
            "s2": region("s2", 2, counts, shift=0.1),
            "t": region("t", 3, counts, shift=0.05),
        },
        normaliser,
    )
    text = task_variability_summary(d, ["s1", "s2"], "t")
    assert "closer to the sources than the sources are to each other" in text
    assert "farther" not in text


def test_summary_with_a_single_source(synthetic, normaliser):
    d = class_conditional_distances(synthetic, normaliser)
    text = task_variability_summary(d, ["a"], "far")
    assert "cannot be measured because there is one source" in text
    assert "beyond sampling noise" in text
    same = task_variability_summary(d, ["a"], "b")
    assert "indistinguishable from sampling noise" in same
    with pytest.raises(KeyError):
        task_variability_summary(d, ["a"], "nowhere")


def test_distances_on_the_tiny_world(regions, catalog):
    arrays = {name: RegionArrays.load(path) for name, path in regions.items()}
    sources = [r.name for r in catalog.sources()]
    target = catalog.targets()[0].name
    normaliser = Normaliser.fit(np.concatenate([arrays[s].x for s in sources]))
    t0 = time.perf_counter()
    d = class_conditional_distances(arrays, normaliser)
    seconds = time.perf_counter() - t0
    print(f"class_conditional_distances on {len(arrays)} tiny-world regions: {seconds:.2f} s")
    print(np.array2string(d.matrix, precision=3))
    n = len(arrays)
    assert d.matrix.shape == d.shared.shape == (n, n)
    assert not d.not_comparable
    for i in range(n):
        for j in range(n):
            if d.shared[i, j]:
                assert math.isfinite(d.matrix[i, j])
    assert all(d.n_shared(target, s) > 0 for s in sources)
    # the world's regions differ in phenology and soil: every source-target pair is farther
    # apart than the within-region reference of the target
    assert all(d.between(target, s) > d.within[target] for s in sources)
    text = task_variability_summary(d, sources, target)
    print(text)
    assert text.startswith(f"The target {target} is at mean distance")
    json.dumps(d.to_dict(), allow_nan=False)
    assert seconds < 30


# ------------------------------------------------------------------------- adaptation gain


def test_adaptation_gain_and_sentence():
    after = {"overall_accuracy": 0.80, "macro_f1": 0.70, "kappa": 0.6}
    before = {"overall_accuracy": 0.60, "macro_f1": 0.45, "kappa": 0.3}
    gain = adaptation_gain(after, before)
    assert gain == pytest.approx({"overall_accuracy": 0.20, "macro_f1": 0.25, "kappa": 0.3})
    text = adaptation_gain_sentence(after, before)
    assert "raised macro-F1 from 0.450 to 0.700 (+0.250)" in text
    assert "source_only" in text and "hurt" not in text
    worse = adaptation_gain_sentence(before, after)
    assert "lowered" in worse and "Adaptation hurt" in worse
    same = adaptation_gain_sentence(after, dict(after))
    assert "left unchanged" in same and "added nothing measurable" in same


def test_adaptation_gain_over_chance_level():
    chance = chance_level(4)
    assert chance == {"overall_accuracy": 0.25, "macro_f1": 0.25, "kappa": 0.0}
    after = {"overall_accuracy": [0.55, 0.5, 0.6], "macro_f1": 0.5}
    assert adaptation_gain(after, chance) == pytest.approx(
        {"overall_accuracy": 0.30, "macro_f1": 0.25}
    )
    assert "chance level" in adaptation_gain_sentence(after, chance, reference="chance level")
    with pytest.raises(ValueError):
        chance_level(0)


# ------------------------------------------------------------------------- meta-overfitting


def history(train: list[float], val: list[float], every: int = 10) -> dict:
    its = list(range(1, len(train) + 1))
    val_its = [i for i in its if i % every == 0][: len(val)]
    return {
        "iteration": its,
        "loss": [1.0] * len(its),
        "acc": train,
        "val_iteration": val_its,
        "val_acc": val,
    }


def test_meta_fit_gap_flags_overfitting():
    h = history([0.5] * 20 + [0.95] * 30, [0.5, 0.6, 0.6, 0.6, 0.6])
    gap = meta_fit_gap(h)
    assert gap["measurable"] and gap["overfitting"]
    # the last three validations (iterations 30, 40, 50) with iterations 21–50 of training
    assert gap["n_val"] == 3 and gap["n_train"] == 30
    assert gap["train_acc"] == pytest.approx(0.95)
    assert gap["val_acc"] == pytest.approx(0.6)
    assert gap["gap"] == pytest.approx(0.35)
    text = meta_fit_gap_sentence(gap)
    assert "overfits its training tasks" in text and "+0.350" in text


def test_meta_fit_gap_aligns_training_with_validation_window():
    # early training accuracy is low: it must not enter the end-of-training mean
    h = history([0.1] * 40 + [0.7] * 10, [0.65, 0.66, 0.67, 0.68, 0.66])
    gap = meta_fit_gap(h, last=1)
    assert gap["train_acc"] == pytest.approx(0.7) and gap["n_train"] == 10
    assert gap["val_acc"] == pytest.approx(0.66)
    assert gap["overfitting"] is False
    assert "no sign of meta-overfitting" in meta_fit_gap_sentence(gap)
    assert gap["threshold"] == OVERFIT_GAP


def test_meta_fit_gap_without_validation():
    for h in (
        {"iteration": [1, 2, 3], "loss": [1, 1, 1], "acc": [0.4, 0.5, 0.6]},
        {**history([0.4, 0.5, 0.6], []), "val_iteration": [], "val_acc": []},
    ):
        gap = meta_fit_gap(h)
        assert not gap["measurable"] and gap["overfitting"] is None and gap["gap"] is None
        assert gap["train_acc"] == pytest.approx(0.5)
        text = meta_fit_gap_sentence(gap)
        assert text.startswith("Meta-overfitting is not measurable") and "0.500" in text
    empty = meta_fit_gap({})
    assert empty["train_acc"] is None and "not measurable" in meta_fit_gap_sentence(empty)


def test_meta_fit_gap_on_a_trained_bundle(meta_model):
    """The tiny world's bundle: its history is read as written by meta-training (the tiny
    sources hold too few fields for validation tasks, so the gap is not measurable there)."""
    h = json.loads((meta_model / "config.json").read_text())["history"]
    gap = meta_fit_gap(h)
    assert gap["measurable"] == bool(h.get("val_acc"))
    text = meta_fit_gap_sentence(gap)
    if gap["measurable"]:
        assert 0 <= gap["train_acc"] <= 1 and 0 <= gap["val_acc"] <= 1
        assert "held-out validation tasks" in text
    else:
        assert gap["train_acc"] == pytest.approx(np.mean(h["acc"][-LAST_TRAINING:]))
        assert text.startswith("Meta-overfitting is not measurable")


# ------------------------------------------------------------------------- meta-underfitting

BASELINES = {
    "random_forest": {"overall_accuracy": 0.62, "macro_f1": 0.55},
    "transfer_head": {"overall_accuracy": 0.70, "macro_f1": 0.58},
    "source_only": {"overall_accuracy": 0.40, "macro_f1": 0.30},
}


def test_meta_underfitting_names_the_best_baseline_and_margin():
    res = meta_underfitting({"maml": {"overall_accuracy": 0.66, "macro_f1": 0.60}}, BASELINES)
    oa, f1 = res["maml"]["overall_accuracy"], res["maml"]["macro_f1"]
    assert oa["best_baseline"] == "transfer_head" and oa["margin"] == pytest.approx(-0.04)
    assert oa["underfitting"] and oa["verdict"] == "below"
    assert f1["best_baseline"] == "transfer_head" and f1["margin"] == pytest.approx(0.02)
    assert not f1["underfitting"] and f1["verdict"] == "above"
    text = meta_underfitting_sentence(res)
    assert "maml is above (one draw, no interval) the best baseline on macro-F1" in text
    assert "; and below (one draw, no interval) the best baseline on overall accuracy" in text
    assert "maml 0.660 vs transfer_head 0.700, -0.040" in text
    assert "no gain over the best baseline on overall accuracy" in text
    assert "meta-underfitting" in text


def test_meta_underfitting_with_confidence_intervals():
    baselines = {
        "transfer_head": {"macro_f1": (0.58, 0.54, 0.62), "overall_accuracy": (0.7, 0.68, 0.72)},
        "random_forest": {"macro_f1": [0.50, 0.45, 0.55], "overall_accuracy": 0.6},
    }
    learner = {"maml": {"macro_f1": (0.56, 0.52, 0.60), "overall_accuracy": (0.6, 0.58, 0.62)}}
    res = meta_underfitting(learner, baselines)
    f1, oa = res["maml"]["macro_f1"], res["maml"]["overall_accuracy"]
    assert f1["verdict"] == "within_ci" and f1["underfitting"]
    assert f1["baseline_ci"] == (0.54, 0.62) and f1["learner_ci"] == (0.52, 0.60)
    assert oa["verdict"] == "below"
    text = meta_underfitting_sentence(res)
    assert "below but within the confidence interval of the best baseline on macro-F1" in text
    assert "clearly below the best baseline on overall accuracy" in text
    # within noise only (no clear loss): said so, not called meta-underfitting
    only_f1 = meta_underfitting(learner, baselines, metrics=("macro_f1",))
    soft = meta_underfitting_sentence(only_f1)
    assert "within noise" in soft and "meta-underfitting" not in soft
    with pytest.raises(ValueError):
        meta_underfitting({"maml": {"macro_f1": (0.5, 0.6, 0.7)}}, baselines)


def test_meta_underfitting_reads_the_evaluation_summary_entries():
    """Entries as cropmeta.evaluate.protocol.confidence writes them; one seed = NaN bounds."""
    nan = math.nan
    learner = {"maml": {"macro_f1": {"mean": 0.40, "low": 0.35, "high": 0.45, "n": 3}}}
    base = {"transfer_head": {"macro_f1": {"mean": 0.60, "low": 0.55, "high": 0.65, "n": 3}}}
    res = meta_underfitting(learner, base)["maml"]["macro_f1"]
    assert res["verdict"] == "below" and res["baseline_ci"] == (0.55, 0.65)
    one_seed = {"maml": {"macro_f1": {"mean": 0.62, "low": nan, "high": nan, "n": 1}}}
    res = meta_underfitting(one_seed, base)["maml"]["macro_f1"]
    assert res["learner_ci"] is None and res["verdict"] == "within_ci"
    assert not res["underfitting"] and res["margin"] == pytest.approx(0.02)
    assert adaptation_gain(one_seed["maml"], {"macro_f1": 0.5}) == pytest.approx({"macro_f1": 0.12})


def test_meta_learner_that_beats_every_baseline_is_not_flagged():
    res = meta_underfitting({"maml": {"overall_accuracy": 0.8, "macro_f1": 0.7}}, BASELINES)
    assert not any(c["underfitting"] for c in res["maml"].values())
    assert "maml improves on every baseline" in meta_underfitting_sentence(res)
    tied = meta_underfitting({"maml": {"macro_f1": 0.58}}, BASELINES)
    assert tied["maml"]["macro_f1"]["verdict"] == "tied"
    assert tied["maml"]["macro_f1"]["underfitting"]
    assert "level with the best baseline on macro-F1" in meta_underfitting_sentence(tied)
