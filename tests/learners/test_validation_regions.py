"""Meta-validation from held-out regions (`--val-region`): whole source regions score the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from checks import assert_one_line_error, each

from cropmeta.evaluate.protocol import EvaluationConfig, plan_folds
from cropmeta.learners import meta_train as mt
from cropmeta.models.bundle import load_config

TINY = dict(iterations=2, n_way=2, k_shot=1, q_query=2, meta_batch=2, val_every=1, val_tasks=2)


@pytest.fixture()
def sources(regions, catalog) -> dict[str, Path]:
    return {r.name: regions[r.name] for r in catalog.sources()}


def test_validation_tasks_come_from_the_held_out_region_only(sources, tmp_path, monkeypatch):
    """The named region gives every validation task and no training task; the others give all
    their samples to training."""
    seen: dict[str, list] = {}
    real_sampler, real_validation = mt.EpisodeSampler, mt.validation_tasks

    def sampler(regions, *args, **kwargs):
        seen.setdefault("train", [(r.name, len(r.codes)) for r in regions])  # the first: training
        return real_sampler(regions, *args, **kwargs)

    def validation(held, *args):
        seen["val"] = [(r.name, len(r.codes)) for r in held]
        return real_validation(held, *args)

    monkeypatch.setattr(mt, "EpisodeSampler", sampler)
    monkeypatch.setattr(mt, "validation_tasks", validation)
    names = list(sources)
    cfg = mt.MetaTrainConfig(algorithm="protonet", val_regions=[names[0]], **TINY)
    model = mt.meta_train(list(sources.values()), tmp_path / "m", cfg, seed=0)
    sizes = {n: len(mt.RegionArrays.load(p).codes) for n, p in sources.items()}
    assert seen["val"] == [(n, sizes[n] if n == names[0] else 0) for n in names]
    assert seen["train"] == [(n, 0 if n == names[0] else sizes[n]) for n in names]
    assert (model / "model.safetensors").is_file()


def test_bad_validation_regions_are_one_line_errors(cli, sources, tmp_path):
    paths = list(sources.values())
    args = ["meta-train", *each("--region", paths), "--iterations", "1", "--ways", "2"]
    out = tmp_path / "m"
    res = cli(*args, "--val-region", "atlantis", "--out", out)
    assert_one_line_error(res, out, "validation region 'atlantis' is not a source")
    every = [x for name in sources for x in ("--val-region", name)]
    res = cli(*args, *every, "--out", out)
    assert_one_line_error(res, out, "every source is a validation region")


def test_evaluate_refuses_a_validation_region_that_is_not_a_source_of_every_fold(cli, world):
    folds = plan_folds(world, EvaluationConfig(meta={"val_regions": ["beauce"]}))
    assert all("beauce" in f.sources for f in folds)
    loro = EvaluationConfig(loro=True, regions=["beauce", "mazovia"])
    loro.meta.val_regions = ["beauce"]  # the target of one fold, the only source of the other
    with pytest.raises(mt.InputError, match="must be sources of every fold"):
        plan_folds(world, loro)


def test_evaluate_cli_validation_region(cli, world, tmp_path):
    out = tmp_path / "e"
    res = cli("evaluate", "--catalog", world, "--out", out, "--val-region", "poltava")
    assert res.exit_code == 2 and "must be sources of every fold" in res.stderr
    assert not out.exists()


@pytest.mark.parametrize("algorithm", ["maml", "protonet", "matching", "relation", "snail"])
def test_small_held_out_classes_validate_with_fewer_ways(sources, tmp_path, caplog, algorithm):
    """When the held-out samples cannot fill tasks of the training shape, validation tasks
    have fewer classes (and every learner scores them) instead of no validation at all."""
    cfg = mt.MetaTrainConfig(algorithm=algorithm, **{**TINY, "n_way": 4, "k_shot": 3, "q_query": 2})
    with caplog.at_level("WARNING", logger="cropmeta.learners.meta_train"):
        model = mt.meta_train(list(sources.values()), tmp_path / "m", cfg, seed=0)
    assert "-way validation tasks only" in caplog.text
    history = load_config(model).history
    assert len(history["val_acc"]) == 2 and all(0 <= a <= 1 for a in history["val_acc"])
