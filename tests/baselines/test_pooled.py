"""The practitioner baselines (issue 18): the source samples stored in the meta-model, pooled
with the shots, fitted by a random forest, gradient boosting or the fine-tuned source
classifier — scored beside every method, saved with `adapt --method` and mapped."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from sklearn.ensemble import RandomForestClassifier

from cropmeta.baselines.pooled import SourcePool, load_pool, pooled_forest
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.learners.pretrain import source_samples
from cropmeta.models.bundle import load_bundle, load_config, load_part


def test_the_meta_model_stores_every_source_sample(meta_model, regions, catalog):
    data = [RegionArrays.load(regions[r.name]) for r in catalog.sources()]
    stored = load_part(meta_model, "sources")
    assert torch.equal(stored["x"], torch.from_numpy(np.concatenate([r.x for r in data])))
    assert torch.equal(stored["codes"], torch.from_numpy(np.concatenate([r.codes for r in data])))


def test_a_stored_subset_keeps_every_class_and_its_share(regions, catalog):
    data = [RegionArrays.load(regions[r.name]) for r in catalog.sources()]
    codes = np.concatenate([r.codes for r in data])
    kept = source_samples(data, 60, seed=1).codes.numpy()
    assert abs(len(kept) - 60) <= len(np.unique(codes))  # one rounding per class
    assert set(kept) == set(codes)
    for c in np.unique(codes):  # each class keeps its share (rounded; at least one)
        assert abs((kept == c).sum() - max(1, round(60 * (codes == c).mean()))) == 0
    again = source_samples(data, 60, seed=1)
    assert torch.equal(again.codes, torch.from_numpy(kept))


def test_pooling_keeps_the_targets_classes_and_weighs_the_shots():
    pool = SourcePool(torch.arange(6.0).reshape(6, 1, 1), np.array([5, 7, 9, 5, 9, 9]), 3.0)
    x_shots = torch.full((2, 1, 1), -1.0)
    x, y, w = pool.with_shots(x_shots, torch.tensor([0, 1]), target_codes=[9, 5])
    assert x[:, 0, 0].tolist() == [0, 2, 3, 4, 5, -1, -1]  # code 7: not a target class
    assert y.tolist() == [1, 0, 1, 0, 0, 0, 1]
    assert w.tolist() == [1, 1, 1, 1, 1, 3, 3]


def test_the_pooled_forest_is_sklearns_forest_on_sources_and_shots(meta_model, regions, catalog):
    cfg = load_config(meta_model)
    pool = load_pool(meta_model, cfg.normaliser, shot_weight=2.0)
    target = RegionArrays.load(regions[catalog.targets()[0].name])
    codes = sorted(int(c) for c in np.unique(target.codes))
    x = torch.from_numpy(cfg.normaliser(target.x[:12]))
    y = torch.tensor([codes.index(int(c)) for c in target.codes[:12]])
    model = pooled_forest(pool, x, y, codes, seed=4)
    xs, ys, w = pool.with_shots(x, y, codes)
    reference = RandomForestClassifier(n_estimators=300, random_state=4, n_jobs=1)
    reference.fit(xs.flatten(1).numpy(), ys.numpy(), sample_weight=w.numpy())  # weights ≠ 1
    query = torch.from_numpy(cfg.normaliser(target.x[12:]))
    expected = np.zeros((len(query), len(codes)))
    expected[:, reference.classes_] = reference.predict_proba(query.flatten(1).numpy())
    with torch.no_grad():
        got = model.head(query.flatten(1)).numpy()  # float64, as predict_proba
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pooled_forest", "pooled_boosting", "transfer_pooled"])
def test_adapt_saves_a_pooled_baseline_that_maps(
    cli, meta_model, regions, catalog, tmp_path, method
):
    out = tmp_path / "adapted"
    target = catalog.targets()[0]
    res = cli(
        *("adapt", "--model", meta_model, "--region", regions[target.name]),
        *("--shots", "3", "--out", out, "--method", method, "--json"),
    )
    assert res.exit_code == 0, res.output
    assert load_config(out).history["adaptation"]["saved"] == method
    model, _ = load_bundle(out)
    crop_map = tmp_path / "map.tif"
    res = cli("map", "--model", out, "--tiles", catalog.path(target.tiles), "--out", crop_map)
    assert res.exit_code == 0, res.output
    with rasterio.open(crop_map) as src:
        assert (src.read(1) > 0).any()


@pytest.mark.slow
def test_the_shot_weight_is_a_setting(cli, meta_model, regions, catalog, tmp_path):
    target = regions[catalog.targets()[0].name]
    outs = []
    for weight in ("1", "50"):
        out = tmp_path / f"w{weight}"
        args = ("--shots", "3", "--method", "pooled_forest", "--shot-weight", weight)
        res = cli("adapt", "--model", meta_model, "--region", target, "--out", out, *args)
        assert res.exit_code == 0, res.output
        outs.append((out / "model.safetensors").read_bytes())
    assert outs[0] != outs[1]
