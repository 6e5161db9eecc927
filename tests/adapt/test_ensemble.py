"""`cropmeta adapt --model A --model B`: several meta-trained models adapted on the same fields
and saved as one ensemble (the mean of their class probabilities) that scores, saves and maps
like a single model."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from checks import assert_one_line_error
from test_saved_method import query_predictions

from cropmeta.adapt.metrics import score_predictions
from cropmeta.models.bundle import load_bundle
from cropmeta.models.ensemble import EnsembleClassifier, mean_log_probability


@pytest.fixture(scope="module")
def matching_model(regions, catalog, tmp_path_factory):
    from cropmeta.learners.meta_train import MetaTrainConfig, meta_train

    cfg = MetaTrainConfig(
        algorithm="matching", iterations=10, n_way=4, k_shot=3, q_query=4, val_every=10,
        val_tasks=4,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("models") / "matching"
    return meta_train([regions[r.name] for r in catalog.sources()], out, cfg, seed=3)


@pytest.mark.slow
def test_the_saved_ensemble_is_the_one_scored(meta_model, matching_model, regions, catalog,
                                              tmp_path):  # fmt: skip
    from cropmeta.adapt.ensemble import ENSEMBLE, adapt_ensemble

    target = regions[catalog.targets()[0].name]
    out = tmp_path / "ensemble"
    result = adapt_ensemble([meta_model, matching_model], target, out, shots=3, seed=4)
    assert result.saved == ENSEMBLE and list(result.metrics)[:3] == [ENSEMBLE, "maml", "matching"]
    assert {"random_forest", "source_only"} <= set(result.metrics)
    model, cfg = load_bundle(out)
    assert isinstance(model, EnsembleClassifier) and cfg.head.names == ["maml", "matching"]
    assert [m["head"]["kind"] for m in cfg.head.members] == ["linear", "matching"]
    predicted, truth = query_predictions(out, target, shots=3, seed=4)
    assert score_predictions(truth, predicted) == result.metrics[ENSEMBLE]
    # each member adapted as on its own: the same scores as `adapt` with one model
    from cropmeta.adapt.adapt import adapt_region

    alone = adapt_region(matching_model, target, tmp_path / "p", shots=3, seed=4, baselines=False)
    assert alone.metrics["matching"] == result.metrics["matching"]


def test_the_mean_of_probabilities():
    p = [torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([[0.3, 0.7], [0.4, 0.6]])]
    expected = np.log([[0.6, 0.4], [0.3, 0.7]])
    np.testing.assert_allclose(mean_log_probability(p).numpy(), expected, rtol=1e-6)


def test_an_ensemble_maps(cli, meta_model, matching_model, regions, catalog, tmp_path):
    target = catalog.targets()[0]
    adapted = tmp_path / "adapted"
    res = cli("adapt", "--model", meta_model, "--model", matching_model,
              "--region", regions[target.name], "--out", adapted)  # fmt: skip
    assert res.exit_code == 0 and "adapted model (ensemble) written" in res.stdout
    out = tmp_path / "map.tif"
    res = cli("map", "--model", adapted, "--tiles", catalog.path(target.tiles), "--out", out,
              "--uncertainty", "entropy")  # fmt: skip
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as m:
        assert (m.read(1) > 0).mean() > 0.5


def test_an_ensemble_refuses_what_it_cannot_do(cli, meta_model, matching_model, regions,
                                               catalog, tmp_path):  # fmt: skip
    target = regions[catalog.targets()[0].name]
    out = tmp_path / "a"
    for option in (("--cv", "3"), ("--method", "random_forest"), ("--set", "adapt_steps=3")):
        res = cli("adapt", "--model", meta_model, "--model", matching_model,
                  "--region", target, "--out", out, *option)  # fmt: skip
        assert res.exit_code == 2 and "not with an ensemble" in res.output and not out.exists()


def test_members_must_share_their_data_preparation(cli, meta_model, regions, catalog, tmp_path):
    import shutil

    from cropmeta.models.bundle import CONFIG, load_config

    other = tmp_path / "other"
    shutil.copytree(meta_model, other)
    cfg = load_config(other)
    prep = cfg.preparation.model_copy(update={"bands": cfg.preparation.bands[::-1]})
    (other / CONFIG).write_text(cfg.model_copy(update={"preparation": prep}).model_dump_json())
    out = tmp_path / "a"
    res = cli("adapt", "--model", meta_model, "--model", other,
              "--region", regions[catalog.targets()[0].name], "--out", out)  # fmt: skip
    assert_one_line_error(res, out, "prepared differently")


@pytest.mark.slow
def test_members_with_their_own_statistics_see_the_series_as_they_adapted(
    meta_model, matching_model, regions, catalog, tmp_path
):
    """A member meta-trained with other standardisation statistics (another seed's split) gets
    the ensemble's standardised series restandardised with its own."""
    import shutil

    from cropmeta.adapt.adapt import adapt_region
    from cropmeta.adapt.ensemble import adapt_ensemble
    from cropmeta.ingest.dataset import RegionArrays
    from cropmeta.models.bundle import CONFIG, load_config

    shifted = tmp_path / "shifted"
    shutil.copytree(matching_model, shifted)
    cfg = load_config(shifted)
    stats = cfg.normaliser.model_copy(
        update={"mean": [m + 0.01 for m in cfg.normaliser.mean],
                "std": [s * 1.1 for s in cfg.normaliser.std]}
    )  # fmt: skip
    (shifted / CONFIG).write_text(cfg.model_copy(update={"normaliser": stats}).model_dump_json())
    target = regions[catalog.targets()[0].name]
    adapt_ensemble([meta_model, shifted], target, tmp_path / "e", shots=3, seed=1)
    adapt_region(shifted, target, tmp_path / "p", shots=3, seed=1, baselines=False)
    ensemble, ecfg = load_bundle(tmp_path / "e")
    alone, pcfg = load_bundle(tmp_path / "p")
    data = RegionArrays.load(target)
    doy = torch.from_numpy(data.doy).long()
    with torch.no_grad():
        member = ensemble.members[1]
        a, b = ensemble.scale[1], ensemble.shift[1]
        seen = member(torch.from_numpy(ecfg.normaliser(data.x)) * a + b, doy).softmax(-1)
        own = alone(torch.from_numpy(pcfg.normaliser(data.x)), doy).softmax(-1)
    assert ecfg.normaliser != pcfg.normaliser
    torch.testing.assert_close(seen, own, atol=1e-4, rtol=1e-4)
