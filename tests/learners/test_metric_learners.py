"""Matching, Relation and SNAIL learners: their heads, bundles, and the CLI pipeline to a map."""

import json
import math

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from checks import each
from test_learners import DOY, SHOTS, WAYS, random_batch, tiny_model

from cropmeta.ingest.prepare import Normaliser, Preparation, TemporalGrid
from cropmeta.learners.registry import build_learner
from cropmeta.models.bundle import BundleConfig, ClassInfo, load_bundle, load_config, save_bundle
from cropmeta.models.heads import LinearHeadConfig, MatchingHead, MatchingHeadConfig

NEW = ["matching", "relation", "snail"]


def trained(name, steps=2, **settings):
    """A tiny model with ``name``'s head, after a few meta-steps (so no weight is at its init)."""
    model, learner = tiny_model(), build_learner(name, settings)
    learner.setup(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for seed in range(steps):
        opt.zero_grad()
        learner.meta_backward(model, random_batch(seed=seed), DOY)
        opt.step()
    return model, learner


def bundle_config(model, kind, classes=()):
    prep = Preparation(bands=["a", "b", "c"], grid=TemporalGrid(start_doy=60, end_doy=130))
    return BundleConfig(
        kind=kind,
        preparation=prep,
        normaliser=Normaliser(mean=[0] * 3, std=[1] * 3),
        encoder=model.shape[2],
        learner={"algorithm": "x"},
        classes=[ClassInfo(code=c + 1, name=f"c{c}") for c in classes],
    )


def test_matching_head_by_hand():
    """Two-dimensional embeddings, τ = 1: the attention worked out on paper."""
    head = MatchingHead(MatchingHeadConfig(scale=1.0), embed=2, n_classes=2)
    support = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    labels = F.one_hot(torch.tensor([0, 1, 1]), 2).float()
    query = torch.tensor([[2.0, 0.0]])
    cos = [1.0, 0.0, 1 / math.sqrt(2)]  # cosine of the query with each support sample
    weights = [math.exp(c) / sum(math.exp(d) for d in cos) for c in cos]
    expected = torch.tensor([[weights[0], weights[1] + weights[2]]])
    with torch.no_grad():
        torch.testing.assert_close(head(query, (support, labels)).exp(), expected)


def test_adapted_matching_model_attends_over_support_embeddings():
    model, learner = trained("matching")
    batch = random_batch()
    adapted = learner.adapt(model, batch.x_s[0], batch.y_s[0], DOY, WAYS)
    with torch.no_grad():
        s = F.normalize(model.encoder(batch.x_s[0], DOY), dim=-1)
        q = F.normalize(model.encoder(batch.x_q[0], DOY), dim=-1)
        tau = model.head.log_scale.exp()
        expected = torch.softmax(tau * q @ s.T, dim=-1) @ F.one_hot(batch.y_s[0], WAYS).float()
        torch.testing.assert_close(adapted(batch.x_q[0], DOY).exp(), expected)


@pytest.mark.parametrize("name", NEW)
def test_bundle_round_trip(name, tmp_path):
    """Meta model and adapted model both come back from safetensors + JSON unchanged."""
    model, learner = trained(name)
    save_bundle(model, bundle_config(model, "meta"), tmp_path / "meta", learner.state)
    meta_cfg = load_config(tmp_path / "meta")
    assert meta_cfg.head.kind == name and meta_cfg.head.memory == {}
    loaded, _ = load_bundle(tmp_path / "meta")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k

    batch = random_batch()
    adapted = learner.adapt(loaded, batch.x_s[0], batch.y_s[0], DOY, WAYS)
    save_bundle(adapted, bundle_config(model, "adapted", range(WAYS)), tmp_path / "adapted")
    again, cfg = load_bundle(tmp_path / "adapted")
    assert cfg.head.kind == name and cfg.head.memory
    assert all(s[0] in (WAYS, WAYS * SHOTS) for s in cfg.head.memory.values())  # classes, shots
    with torch.no_grad():
        expected = adapted(batch.x_q[0], DOY)
        assert expected.shape == (batch.x_q.shape[1], WAYS)
        assert torch.equal(again(batch.x_q[0], DOY), expected)


def test_old_bundles_have_a_linear_head(tmp_path):
    model = tiny_model()
    save_bundle(model, bundle_config(model, "meta"), tmp_path / "m")
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    assert raw.pop("head") == {"kind": "linear"}
    (tmp_path / "m" / "config.json").write_text(json.dumps(raw))
    loaded, cfg = load_bundle(tmp_path / "m")
    assert cfg.head == LinearHeadConfig() and torch.equal(loaded.head.weight, model.head.weight)


def test_unadapted_support_head_says_so():
    model, _ = trained("matching", steps=0)
    with pytest.raises(ValueError, match="adapt the model first"):
        model(random_batch().x_q[0], DOY)


def test_relation_mse_is_the_papers_loss():
    model, learner = trained("relation", steps=0, loss="mse")
    batch = random_batch(tasks=1)
    loss, _ = learner.meta_loss(model, batch, DOY)
    support = (batch.x_s[0], F.one_hot(batch.y_s[0], WAYS).float())
    scores = model(batch.x_q[0], DOY, support)
    expected = F.mse_loss(torch.sigmoid(scores), F.one_hot(batch.y_q[0], WAYS).float())
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.head.relation[0].weight.grad.abs().sum() > 0


def test_snail_reads_the_support_not_the_other_queries_nor_label_numbers():
    model, learner = trained("snail")
    batch = random_batch()
    x_s, y_s, x_q = batch.x_s[0], batch.y_s[0], batch.x_q[0]
    adapted = learner.adapt(model, x_s, y_s, DOY, WAYS)
    perm = torch.tensor([2, 0, 1])  # class c is renamed perm[c]
    renamed = learner.adapt(model, x_s, perm[y_s], DOY, WAYS)
    with torch.no_grad():
        scores = adapted(x_q, DOY)
        torch.testing.assert_close(adapted(x_q[:2], DOY), scores[:2], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(renamed(x_q, DOY)[:, perm], scores, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW)
def test_cli_meta_train_adapt_map(name, cli, regions, catalog, tmp_path):
    """The whole pipeline through the CLI; the map holds the adapted model's classes."""
    sources = [str(regions[r.name]) for r in catalog.sources()]
    meta, adapted, out = tmp_path / "meta", tmp_path / "adapted", tmp_path / "map.tif"
    tiny = ("--iterations", "2", "--ways", "3", "--shots", "2", "--queries", "2")
    res = cli("meta-train", *each("--region", sources), "--algorithm", name, "--out", meta, *tiny)
    assert res.exit_code == 0, res.output
    target = regions[catalog.targets()[0].name]
    res = cli(
        "adapt", "--model", meta, "--region", target, "--shots", "2", "--out", adapted, "--json",
        "--method", name,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert 0 <= result["metrics"][name]["overall_accuracy"] <= 1
    cfg = load_config(adapted)
    assert cfg.head.kind == name and len(cfg.classes) == len(result["classes"])
    tiles = catalog.path(catalog.targets()[0].tiles)
    res = cli("map", "--model", adapted, "--tiles", tiles, "--out", out, "--block", "64")
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as m:
        data, tags = m.read(1), m.tags()
    codes = {int(k.split("_")[1]): v for k, v in tags.items() if k.startswith("CLASS_")}
    assert codes == {c.code: c.name for c in cfg.classes}
    present = set(np.unique(data).tolist()) - {0}
    assert present and present <= set(codes)
