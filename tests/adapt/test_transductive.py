"""Transductive adaptation (issue 18, part 2): the target region's unlabelled samples used by
label shift, self-training, phenology-shift alignment and soft k-means — scored beside every
method, never reading the query's labels, saved with `adapt --method` and mapped."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch

from cropmeta.adapt.adapt import adapt_region
from cropmeta.adapt.label_shift import bbse_priors, confusion, em_priors
from cropmeta.adapt.transductive import split_variant
from cropmeta.ingest.dataset import RegionArrays, open_region, save_region
from cropmeta.models.bundle import load_bundle, load_config


def _labels(priors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The classes :func:`_gaussian_posteriors` draws with the same arguments."""
    return np.random.default_rng(seed).choice(3, size=n, p=priors)


def _gaussian_posteriors(priors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Samples of three overlapping 1-D Gaussian classes drawn with ``priors``; their exact
    posteriors under uniform training priors."""
    rng = np.random.default_rng(seed)
    means = np.array([-1.0, 0.0, 1.2])
    y = rng.choice(3, size=n, p=priors)
    x = rng.normal(means[y], 0.6)
    like = np.exp(-((x[:, None] - means[None]) ** 2) / (2 * 0.6**2))
    return like / like.sum(1, keepdims=True)


@pytest.mark.parametrize("priors", [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3]])
def test_em_recovers_a_known_label_shift(priors):
    proba = _gaussian_posteriors(np.array(priors), 50000, seed=1)
    estimate = em_priors(proba, np.full(3, 1 / 3))
    assert estimate.converged
    assert np.abs(estimate.target - priors).max() < 0.02
    naive = proba.mean(0)  # the mean posterior: biased towards the training priors
    if np.ptp(priors) > 0:
        assert np.abs(naive - priors).max() > 0.05


def test_em_starts_from_and_corrects_for_the_training_priors():
    proba = _gaussian_posteriors(np.array([0.5, 0.3, 0.2]), 20000, seed=2)
    # the same samples' posteriors under training priors (0.6, 0.2, 0.2)
    train = np.array([0.6, 0.2, 0.2])
    skewed = proba * train * 3
    skewed /= skewed.sum(1, keepdims=True)
    estimate = em_priors(skewed, train)
    assert np.abs(estimate.target - [0.5, 0.3, 0.2]).max() < 0.02


@pytest.mark.parametrize("priors", [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3]])
def test_bbse_recovers_a_known_label_shift_from_miscalibrated_classifiers(priors):
    """Black-box shift estimation needs only each classifier's confusion on balanced labelled
    samples and its hard predictions on the shifted ones: two classifiers, one of them biased
    towards class 0 (its posteriors far from calibrated), stacked, recover the priors."""
    balanced = _gaussian_posteriors(np.array([1 / 3] * 3), 30000, seed=3)
    shifted = _gaussian_posteriors(np.array(priors), 30000, seed=4)
    y_balanced = _labels(np.array([1 / 3] * 3), 30000, seed=3)
    confusions, shares = [], []
    for bias in (np.ones(3), np.array([4.0, 1.0, 1.0])):
        guess = (balanced * bias).argmax(1)
        confusions.append(confusion(y_balanced, guess, 3))
        shares.append(np.bincount((shifted * bias).argmax(1), minlength=3) / len(shifted))
    estimate = bbse_priors(confusions, shares)
    assert abs(estimate.sum() - 1) < 1e-9 and (estimate > 0).all()
    assert np.abs(estimate - priors).max() < 0.02
    if np.ptp(priors) > 0:  # the biased classifier's raw shares are far off
        assert np.abs(shares[1] - priors).max() > 0.05


def test_bbse_stays_on_the_simplex_when_the_shares_contradict_the_confusion():
    eye = np.eye(3)
    estimate = bbse_priors([eye], [np.array([0.9, 0.3, -0.2])])
    assert abs(estimate.sum() - 1) < 1e-9 and (estimate >= 0).all()
    assert estimate.argmax() == 0


def test_variant_names():
    assert split_variant("pooled_forest+label_shift") == ("pooled_forest", "label_shift")
    assert split_variant("maml") == ("maml", None)
    with pytest.raises(ValueError, match="not one of"):
        split_variant("maml+magic")


@pytest.fixture(scope="module")
def target(regions, catalog):
    return regions[catalog.targets()[0].name]


@pytest.fixture(scope="module")
def scored(meta_model, target, tmp_path_factory):
    out = tmp_path_factory.mktemp("transductive") / "model"
    return adapt_region(meta_model, target, out, shots=3, seed=0)


@pytest.mark.slow
def test_label_shift_is_scored_beside_every_method(scored):
    plain = [m for m in scored.metrics if "+" not in m]
    assert len(plain) >= 5
    for method in plain:
        assert f"{method}+label_shift" in scored.metrics
    assert "class priors estimated" in scored.notes["pooled_forest+label_shift"]


@pytest.mark.slow
def test_no_transductive_method_reads_the_query_labels(meta_model, target, tmp_path, monkeypatch):
    """The query's labels permuted in a copy of the region, the support draw held fixed: every
    method's query predictions stay the same (only their scores change) — the cross-validated
    class shares and re-weightings (`+bbse`) included."""
    import cropmeta.adapt.adapt as adapt_module
    import cropmeta.adapt.score as score_module
    from cropmeta.tasks.episodes import split_support_query

    data = RegionArrays.load(target)
    split = split_support_query(data.codes, 3, np.random.default_rng(0))
    support, query, _ = split
    kept = query[np.isin(data.codes[query], np.unique(data.codes[support]))]
    ds = open_region(target)
    codes = ds["code"].values.copy()
    codes[kept] = np.random.default_rng(5).permutation(codes[kept])
    assert (codes[kept] != data.codes[kept]).any()
    permuted = save_region(ds.assign(code=(ds["code"].dims, codes)), tmp_path / "permuted.zarr")

    monkeypatch.setattr(adapt_module, "split_support_query", lambda *a: split)
    seen: list[list[np.ndarray]] = [[], []]
    for i, region in enumerate([target, permuted]):
        record = seen[i]
        monkeypatch.setattr(
            score_module, "score_predictions", lambda t, p, r=record: r.append(p) or {}
        )
        res = adapt_region(
            meta_model, region, tmp_path / f"m{i}", shots=3, seed=0, cv_folds=3, forest_trees=30
        )  # cross-validated: the region's class shares estimated, `+bbse` scored
        assert "pooled_forest+bbse" in res.metrics and res.class_prior is not None
    assert len(seen[0]) == len(seen[1]) > 10
    for before, after in zip(*seen, strict=True):
        assert np.array_equal(before, after)


@pytest.mark.slow
def test_a_variant_is_saved_and_maps_with_its_priors(meta_model, target, tmp_path):
    out = tmp_path / "model"
    res = adapt_region(meta_model, target, out, shots=3, seed=0, method="random_forest+label_shift")
    assert res.saved == "random_forest+label_shift"
    cfg = load_config(out)
    assert cfg.head.kind == "adjusted" and cfg.head.member["head"]["kind"] == "forest"
    prior = cfg.head.target_prior
    assert abs(sum(prior) - 1) < 1e-5 and len(prior) == len(cfg.classes)
    model, _ = load_bundle(out)
    data = RegionArrays.load(target)
    x = torch.from_numpy(cfg.normaliser(data.x))
    with torch.no_grad():
        p = model(x, torch.from_numpy(data.doy).long()).exp()
    assert torch.allclose(p.sum(-1), torch.ones(len(x)), atol=1e-5)
    history = json.loads(json.dumps(cfg.history["adaptation"]))
    assert history["saved"] == "random_forest+label_shift"


@pytest.mark.slow
def test_the_cli_saves_a_corrected_method_that_maps(cli, meta_model, target, catalog, tmp_path):
    out = tmp_path / "adapted"
    res = cli(
        *("adapt", "--model", meta_model, "--region", target, "--shots", "3", "--out", out),
        *("--method", "pooled_forest", "--transductive", "label_shift"),
    )
    assert res.exit_code == 0, res.output
    assert "pooled_forest+label_shift" in res.output
    crop_map = tmp_path / "map.tif"
    tiles = catalog.path(catalog.targets()[0].tiles)
    res = cli("map", "--model", out, "--tiles", tiles, "--out", crop_map)
    assert res.exit_code == 0, res.output
    with rasterio.open(crop_map) as src:
        assert (src.read(1) > 0).any()


def test_bbse_needs_two_labelled_samples_a_class(cli, meta_model, target, tmp_path):
    """The region's class shares come from cross-validation: with one labelled field a class
    `+bbse` is refused in one line, nothing written."""
    out = tmp_path / "m"
    res = cli(
        *("adapt", "--model", meta_model, "--region", target, "--shots", "1", "--out", out),
        *("--method", "random_forest", "--transductive", "bbse"),
    )
    assert res.exit_code == 2 and "2 labelled samples a class" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()


def test_a_correction_needs_unlabelled_samples(cli, meta_model, target, tmp_path):
    res = cli(
        *("adapt", "--model", meta_model, "--region", target, "--out", tmp_path / "m"),
        *("--transductive", "label_shift"),
    )
    assert res.exit_code == 2
    assert "unlabelled" in res.output and not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def protonet_model(regions, catalog, tmp_path_factory):
    from cropmeta.learners.meta_train import MetaTrainConfig, meta_train

    cfg = MetaTrainConfig(
        algorithm="protonet", iterations=20, n_way=4, k_shot=3, q_query=4, val_every=10,
        val_tasks=4, baselines=False,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("protonet") / "meta"
    return meta_train([regions[r.name] for r in catalog.sources()], out, cfg, seed=3)


def test_soft_kmeans_refines_protonets_prototypes(protonet_model, target, tmp_path):
    res = adapt_region(protonet_model, target, tmp_path / "m", shots=3, seed=0, baselines=False)
    assert {"protonet+soft_kmeans", "protonet+label_shift"} <= set(res.metrics)
    out = tmp_path / "saved"
    adapt_region(protonet_model, target, out, shots=3, seed=0, method="protonet+soft_kmeans")
    plain, _ = load_bundle(tmp_path / "m")
    refined, _ = load_bundle(out)
    moved = refined.state_dict()["head.weight"] - plain.state_dict()["head.weight"]
    assert moved.abs().max() > 1e-4  # the prototypes moved towards the unlabelled clusters


def test_unlabelled_samples_preprocessed_from_the_tiles_serve_adapt(
    cli, meta_model, target, catalog, tmp_path
):
    """`preprocess --unlabelled --sample-pixels`: the region's pixels without labels, given to
    `adapt --unlabelled` when every labelled field is support; as `--region` it is refused."""
    from cropmeta.ingest.preprocess import preprocess_unlabelled

    prep = RegionArrays.load(target).preparation
    pixels = tmp_path / "pixels.zarr"
    tiles = catalog.path(catalog.targets()[0].tiles)
    preprocess_unlabelled(
        tiles, out=pixels, sample_pixels=300, grid=prep.grid, bands=prep.bands, seed=1
    )
    out = tmp_path / "m"
    res = cli(
        *("adapt", "--model", meta_model, "--region", target, "--out", out),
        *("--method", "random_forest", "--transductive", "label_shift", "--unlabelled", pixels),
    )
    assert res.exit_code == 0, res.output
    assert load_config(out).head.kind == "adjusted"
    res = cli("adapt", "--model", meta_model, "--region", pixels, "--out", tmp_path / "n")
    assert res.exit_code == 2 and "unlabelled samples only" in res.output


def test_unlabelled_samples_prepared_otherwise_are_refused(
    cli, meta_model, target, catalog, tmp_path
):
    from checks import assert_one_line_error

    from cropmeta.ingest.preprocess import preprocess_unlabelled

    prep = RegionArrays.load(target).preparation
    pixels = tmp_path / "pixels.zarr"
    tiles = catalog.path(catalog.targets()[0].tiles)
    preprocess_unlabelled(tiles, out=pixels, sample_pixels=50, grid=prep.grid,
                          bands=prep.bands[:2], seed=1)  # fmt: skip
    out = tmp_path / "m"
    res = cli("adapt", "--model", meta_model, "--region", target, "--out", out,
              "--unlabelled", pixels)  # fmt: skip
    assert_one_line_error(res, out, "prepared differently")
