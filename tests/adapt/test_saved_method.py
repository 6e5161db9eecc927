"""`cropmeta adapt --method`: save a baseline fitted on the same fields instead of the
meta-learner (or `best`, what cross-validation picks), as a model `cropmeta map` maps like any
other."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from checks import assert_one_line_error

from cropmeta.adapt.adapt import chosen_method
from cropmeta.adapt.cross_validate import best_method
from cropmeta.adapt.metrics import score_predictions
from cropmeta.adapt.names import DEFAULT_TRANSDUCTION
from cropmeta.adapt.transductive import split_variant
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.models.bundle import load_bundle, load_config
from cropmeta.tasks.episodes import split_support_query


def query_predictions(model_dir, region, shots: int, seed: int):
    """The saved model's predictions of the query samples ``adapt --shots`` scored, and their
    true class indices (the same draw: the same seed)."""
    model, cfg = load_bundle(model_dir)
    data = RegionArrays.load(region)
    support, query, _ = split_support_query(data.codes, shots, np.random.default_rng(seed))
    codes = list(np.unique(data.codes[support]))
    kept = query[np.isin(data.codes[query], codes)]
    x = torch.from_numpy(cfg.normaliser(data.x[kept]))
    with torch.no_grad():
        predicted = model(x, torch.from_numpy(data.doy).long()).argmax(-1).numpy()
    return predicted, np.array([codes.index(c) for c in data.codes[kept]])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["transfer_all", "source_only", "from_scratch", "random_forest"])
def test_the_saved_baseline_is_the_one_scored(meta_model, regions, catalog, tmp_path, method):
    from cropmeta.adapt.adapt import adapt_region

    target = regions[catalog.targets()[0].name]
    out = tmp_path / "adapted"
    result = adapt_region(meta_model, target, out, shots=3, seed=5, method=method, forest_trees=30)
    assert result.saved == method and load_config(out).kind == "adapted"
    predicted, truth = query_predictions(out, target, shots=3, seed=5)
    assert score_predictions(truth, predicted) == result.metrics[method]


@pytest.mark.parametrize("method", ["source_only", "random_forest"])
def test_a_saved_baseline_maps(cli, meta_model, regions, catalog, tmp_path, method):
    target = catalog.targets()[0]
    adapted = tmp_path / "adapted"
    res = cli("adapt", "--model", meta_model, "--region", regions[target.name], "--out", adapted,
              "--method", method, "--forest-trees", "7")  # fmt: skip
    assert res.exit_code == 0 and f"adapted model ({method}) written" in res.stdout
    if method == "random_forest":  # as many trees as asked for
        assert load_config(adapted).head.memory["roots"] == [7]
    out = tmp_path / "map.tif"
    res = cli("map", "--model", adapted, "--tiles", catalog.path(target.tiles), "--out", out)
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as m:
        assert (m.read(1) > 0).mean() > 0.5


def test_adapt_refuses_a_method_it_cannot_save(cli, meta_model, regions, catalog, tmp_path):
    target = regions[catalog.targets()[0].name]
    out = tmp_path / "a"
    for args, why in (
        (("--method", "svm"), "'svm'"),
        (("--method", "random_forest", "--transductive", "soft_kmeans"), "protonet"),
    ):
        res = cli("adapt", "--model", meta_model, "--region", target, "--out", out, *args)
        assert res.exit_code == 2 and why in res.output and not out.exists()


@pytest.mark.slow
def test_adapt_saves_the_automatic_choice_by_default(cli, meta_model, regions, catalog, tmp_path):
    """Without --method: every method cross-validated on the labelled fields (as many folds as
    they fill, at most 5), the choice saved with the default correction where it applies
    (every query sample of the region is unlabelled data here) — and a class with one field:
    the learner."""
    target = regions[catalog.targets()[0].name]
    out = tmp_path / "a"
    res = cli("adapt", "--model", meta_model, "--region", target, "--out", out, "--shots", "3",
              "--json", "--forest-trees", "30")  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    pick, how = split_variant(result["saved"])  # with the default correction where it applies
    leader = best_method(result["cv_metrics"])
    assert result["cv_folds"] == 3 and leader in (result["saved"], pick)
    assert how in (None, DEFAULT_TRANSDUCTION, "bbse")
    res = cli("adapt", "--model", meta_model, "--region", target, "--out", tmp_path / "b",
              "--shots", "1", "--json", "--forest-trees", "30")  # fmt: skip
    result = json.loads(res.stdout)
    assert result["saved"] == "maml" and "one labelled sample" in result["notes"]["best"]


@pytest.mark.slow
def test_best_saves_what_cross_validation_picks(meta_model, regions, catalog, tmp_path):
    from cropmeta.adapt.adapt import adapt_region

    target = regions[catalog.targets()[0].name]
    out = tmp_path / "adapted"
    result = adapt_region(
        meta_model, target, out, shots=3, seed=2, cv_folds=3, method="best", forest_trees=30
    )
    assert split_variant(result.saved)[0] == split_variant(chosen_method(result.cv_metrics))[0]
    assert load_config(out).history["adaptation"]["saved"] == result.saved
    predicted, truth = query_predictions(out, target, shots=3, seed=2)
    assert score_predictions(truth, predicted) == result.metrics[result.saved]


CV = {  # cross-validated macro-F1 (and its standard error) of three methods
    "maml": {"macro_f1": 0.70, "macro_f1_se": 0.06},
    "random_forest": {"macro_f1": 0.66, "macro_f1_se": 0.05},
    "pooled_forest": {"macro_f1": 0.72, "macro_f1_se": 0.07},
}


def test_best_takes_the_cv_leader_with_the_default_correction_where_it_applies():
    every = lambda how, method: True  # noqa: E731
    assert chosen_method(CV) == "pooled_forest"  # no unlabelled samples: no correction
    assert chosen_method(CV, "best", every) == f"pooled_forest+{DEFAULT_TRANSDUCTION}"
    assert chosen_method(CV, "best+label_shift", every) == "pooled_forest+label_shift"
    learner = CV | {"maml": {"macro_f1": 0.80, "macro_f1_se": 0.06}}
    only_networks = lambda how, method: method == "maml"  # noqa: E731
    assert chosen_method(learner, "best", only_networks) == f"maml+{DEFAULT_TRANSDUCTION}"
    assert chosen_method(CV, "best", only_networks) == "pooled_forest"


def test_with_the_regions_shares_best_ranks_the_weighted_figures_and_their_reweightings():
    """Where cross-validation weighted the held-out fields to the region's estimated class
    shares, `best` ranks by the mean of the weighted accuracy and macro-F1, over the methods and
    their `+bbse` re-weightings; a `+bbse` pick is saved as it is; a named correction picks
    among the plain methods."""
    every = lambda how, method: True  # noqa: E731
    weighted = {
        "maml": {"macro_f1": 0.70, "weighted_accuracy": 0.60, "weighted_macro_f1": 0.55},
        "pooled_forest": {"macro_f1": 0.60, "weighted_accuracy": 0.80, "weighted_macro_f1": 0.50},
        "maml+bbse": {"macro_f1": 0.65, "weighted_accuracy": 0.75, "weighted_macro_f1": 0.60},
    }
    assert chosen_method(weighted, "best", every) == "maml+bbse"
    del weighted["maml+bbse"]
    assert chosen_method(weighted, "best", every) == f"pooled_forest+{DEFAULT_TRANSDUCTION}"
    weighted["pooled_forest+bbse"] = {"weighted_accuracy": 0.9, "weighted_macro_f1": 0.9}
    assert chosen_method(weighted, "best+label_shift", every) == "pooled_forest+label_shift"


def test_transfer_needs_the_source_classifier(cli, regions, catalog, tmp_path):
    from cropmeta.learners.meta_train import MetaTrainConfig, meta_train

    cfg = MetaTrainConfig(
        iterations=2, n_way=3, k_shot=2, q_query=2, val_every=2, val_tasks=2, baselines=False
    )
    model = meta_train([regions[r.name] for r in catalog.sources()], tmp_path / "m", cfg)
    out = tmp_path / "a"
    target = regions[catalog.targets()[0].name]
    res = cli("adapt", "--model", model, "--region", target, "--out", out,
              "--method", "transfer_head")  # fmt: skip
    assert_one_line_error(res, out, "holds no pre-trained source classifier")
    assert "transfer_head" in res.stderr
