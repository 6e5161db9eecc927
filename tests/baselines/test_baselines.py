"""Transfer, source-only, from-scratch, random-forest and pooled baselines beside the adapted
model."""

import json
import shutil

import numpy as np
import pytest
import torch

from cropmeta.baselines.pooled import load_pool
from cropmeta.baselines.run import Shots, Sources, baseline_predictions
from cropmeta.baselines.transfer import fine_tune_all, fine_tune_head, source_only
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.learners.pretrain import load_pretrained
from cropmeta.models.bundle import load_config, load_part

EVERY_METHOD = {
    "maml",
    "from_scratch",
    "random_forest",
    "transfer_head",
    "transfer_all",
    "source_only",
    "pooled_forest",
    "pooled_boosting",
    "transfer_pooled",
    "presto_forest",
    "presto_linear",
}


def _shots(meta_model, region, k=3, seed=0) -> Shots:
    """k support samples per class of ``region``, the rest as query, normalised as the model."""
    cfg = load_config(meta_model)
    data = RegionArrays.load(region)
    rng = np.random.default_rng(seed)
    codes = sorted(int(c) for c in np.unique(data.codes))
    support = np.concatenate([rng.permutation(np.flatnonzero(data.codes == c))[:k] for c in codes])
    query = np.setdiff1d(np.arange(len(data.codes)), support)
    x = torch.from_numpy(cfg.normaliser(data.x))
    y = torch.tensor([codes.index(int(c)) for c in data.codes[support]])
    doy = torch.from_numpy(data.doy).long()
    prepared = {"bands": cfg.preparation.bands, "normaliser": cfg.normaliser}
    return Shots(x[support], y, x[query], doy, codes, **prepared)


@pytest.mark.slow
def test_adapt_json_lists_every_baseline_on_the_same_query(
    cli, meta_model, regions, catalog, tmp_path
):
    target = regions[catalog.targets()[0].name]
    res = cli(
        "adapt",
        "--model",
        meta_model,
        "--region",
        target,
        "--shots",
        "3",
        "--out",
        tmp_path / "a",
        "--json",
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    plain = {m for m in result["metrics"] if "+" not in m}  # and their corrected variants
    assert plain == EVERY_METHOD and result["learner"] == "maml"
    assert {m.split("+")[0] for m in result["metrics"]} == EVERY_METHOD
    for m in result["metrics"].values():
        assert 0 <= m["overall_accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
    # every baseline predicts every query sample of the same split
    cfg = load_config(meta_model)
    lent = Sources(load_pretrained(meta_model, cfg), load_pool(meta_model, cfg.normaliser))
    run = baseline_predictions(_shots(meta_model, target), cfg.encoder, 0, lent)
    assert set(run.predictions) == EVERY_METHOD - {"maml"}
    assert len({len(p) for p in run.predictions.values()}) == 1
    # the adapted bundle is mappable and carries no source classifier
    assert not load_part(tmp_path / "a", "transfer")
    assert json.loads((tmp_path / "a" / "config.json").read_text())["transfer_classes"] == []


def test_meta_bundle_stores_a_source_classifier_over_the_sources_codes(
    meta_model, regions, catalog
):
    cfg = load_config(meta_model)
    sources = {int(c) for r in catalog.sources() for c in RegionArrays.load(regions[r.name]).codes}
    assert cfg.transfer_classes == sorted(sources)
    pre = load_pretrained(meta_model, cfg)
    assert pre.model.head.weight.shape[0] == len(sources)
    assert cfg.history["transfer"]["epochs"] >= 1


def test_transfer_head_leaves_the_encoder_unchanged(meta_model, regions, catalog):
    pre = load_pretrained(meta_model, load_config(meta_model))
    before = {k: v.clone() for k, v in pre.model.encoder.state_dict().items()}
    shots = _shots(meta_model, regions[catalog.targets()[1].name])
    args = (pre, shots.x_support, shots.y_support, shots.doy, shots.codes, 0)
    head = fine_tune_head(*args)
    after = head.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert head.head.weight.shape[0] == len(shots.codes)
    everything = fine_tune_all(*args)
    assert not all(torch.equal(before[k], everything.encoder.state_dict()[k]) for k in before)
    assert all(torch.equal(before[k], v) for k, v in pre.model.encoder.state_dict().items())


def test_source_only_never_predicts_a_class_the_sources_never_saw(meta_model, regions, catalog):
    cfg = load_config(meta_model)
    pre = load_pretrained(meta_model, cfg)
    shots = _shots(meta_model, regions[catalog.targets()[0].name])
    unseen = max(pre.codes) + 100  # a class no source region has
    codes = [unseen, *shots.codes]
    model = source_only(pre, codes)
    with torch.no_grad():
        logits = model(torch.cat([shots.x_support, shots.x_query]), shots.doy)
    assert torch.isneginf(logits[:, 0]).all() and (logits.argmax(-1) != 0).all()
    shifted = Shots(shots.x_support, shots.y_support + 1, shots.x_query, shots.doy, codes)
    run = baseline_predictions(shifted, cfg.encoder, 0, Sources(pre), {unseen: "mystery crop"})
    assert (run.predictions["source_only"] != 0).all()
    assert "mystery crop" in run.notes["source_only"]


@pytest.mark.slow
def test_meta_model_without_transfer_weights_still_adapts(regions, catalog, tmp_path):
    from cropmeta.adapt.adapt import adapt_region
    from cropmeta.learners.meta_train import MetaTrainConfig, meta_train

    cfg = MetaTrainConfig(
        iterations=2, n_way=3, k_shot=2, q_query=2, val_every=2, val_tasks=2, baselines=False
    )
    model = meta_train([regions[r.name] for r in catalog.sources()], tmp_path / "m", cfg)
    assert not load_part(model, "transfer")
    old = tmp_path / "old"  # a bundle written before the field existed
    shutil.copytree(model, old)
    config = json.loads((old / "config.json").read_text())
    del config["transfer_classes"]
    (old / "config.json").write_text(json.dumps(config))
    target = regions[catalog.targets()[1].name]
    for bundle in (model, old):
        result = adapt_region(bundle, target, tmp_path / f"a-{bundle.name}", shots=3)
        shots_only = {"maml", "from_scratch", "random_forest", "presto_forest", "presto_linear"}
        assert {m.split("+")[0] for m in result.metrics} == shots_only
        assert "maml+timematch" not in result.metrics  # alignment needs the source classifier
        assert "transfer_head" in result.notes["baselines"]
        assert "pooled_forest" in result.notes["baselines"]


def test_pretrained_init_starts_meta_training_from_the_transfer_encoder(
    regions, catalog, tmp_path, monkeypatch
):
    """init="pretrained" (Meta-Baseline): the meta-model enters meta-training with the encoder
    of the source classifier stored as the transfer part — one pre-training serves both — and
    the run is deterministic."""
    from safetensors.torch import load_file

    from cropmeta.learners import meta_train as mt

    seen: list[dict[str, torch.Tensor]] = []
    real = mt.optimise

    def spy(cfg, run, trainee, *args, **kwargs):  # the encoder as meta-training receives it
        seen.append({k: v.clone() for k, v in trainee.model.encoder.state_dict().items()})
        return real(cfg, run, trainee, *args, **kwargs)

    monkeypatch.setattr(mt, "optimise", spy)
    cfg = mt.MetaTrainConfig(
        iterations=2, n_way=3, k_shot=2, q_query=2, val_every=2, val_tasks=2, init="pretrained"
    )
    sources = [regions[r.name] for r in catalog.sources()]
    first = mt.meta_train(sources, tmp_path / "a", cfg, seed=1)
    second = mt.meta_train(sources, tmp_path / "b", cfg, seed=1)
    transfer = load_part(first, "transfer")
    encoder = {
        k.removeprefix("encoder."): v for k, v in transfer.items() if k.startswith("encoder.")
    }
    assert encoder and seen[0].keys() == encoder.keys()
    assert all(torch.equal(seen[0][k], encoder[k]) for k in encoder)
    history = load_config(first).history
    assert history["init"] == history["config"]["init"] == "pretrained"
    a, b = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a random start differs from the pre-trained encoder
    mt.meta_train(sources, tmp_path / "c", cfg.model_copy(update={"init": "random"}), seed=1)
    assert not all(torch.equal(seen[2][k], encoder[k]) for k in encoder)


def test_meta_train_cli_takes_the_init(cli, regions, catalog, tmp_path):
    sources = [regions[r.name] for r in catalog.sources()]
    options = ["--iterations", "2", "--ways", "3", "--shots", "2", "--queries", "2"]
    region_args = [a for s in sources for a in ("--region", s)]
    out = tmp_path / "m"
    args = ["meta-train", *region_args, "--out", out, *options, "--init", "pretrained"]
    res = cli(*args, "--checkpoint-every", "0")
    assert res.exit_code == 0, res.output
    assert load_config(out).history["init"] == "pretrained"
