"""meta-train and adapt on the tiny world: bundles without pickle, baselines on the same shots."""

import json

import numpy as np
import pytest
import torch
from checks import assert_one_line_error
from safetensors.torch import load_file

from cropmeta.baselines.names import BASELINES
from cropmeta.models.bundle import load_bundle


def test_meta_model_bundle(meta_model):
    files = sorted(p.name for p in meta_model.iterdir())
    assert files == [".cropmeta-output.json", "config.json", "model.safetensors"]
    cfg = json.loads((meta_model / "config.json").read_text())
    assert cfg["kind"] == "meta" and cfg["learner"]["algorithm"] == "maml"
    assert cfg["preparation"]["bands"][0] == "B02" and len(cfg["normaliser"]["mean"]) == 10
    assert len(cfg["history"]["loss"]) == 40
    weights = load_file(str(meta_model / "model.safetensors"))
    assert weights["head.weight"].shape[0] == 1  # one row, copied to every class of a task
    model, _ = load_bundle(meta_model)
    assert torch.equal(model.head.weight, weights["head.weight"])


def test_meta_train_is_deterministic(regions, catalog, tmp_path):
    from cropmeta.learners.meta_train import MetaTrainConfig, meta_train

    cfg = MetaTrainConfig(iterations=3, n_way=3, k_shot=2, q_query=3, val_every=3, val_tasks=2)
    srcs = [regions[r.name] for r in catalog.sources()]
    a = load_file(str(meta_train(srcs, tmp_path / "a", cfg, seed=1) / "model.safetensors"))
    b = load_file(str(meta_train(srcs, tmp_path / "b", cfg, seed=1) / "model.safetensors"))
    c = load_file(str(meta_train(srcs, tmp_path / "c", cfg, seed=2) / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_meta_train_cli(cli, regions, catalog, tmp_path):
    a, b, *_ = [regions[r.name] for r in catalog.sources()]
    out = tmp_path / "m"
    res = cli(
        "meta-train",
        "--region",
        a,
        "--region",
        b,
        "--algorithm",
        "maml",
        "--encoder",
        "tempcnn",
        "--out",
        out,
        "--iterations",
        "2",
        "--ways",
        "3",
        "--shots",
        "2",
        "--queries",
        "2",
    )
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").is_file()


@pytest.mark.slow
def test_adapt_cli_json_compares_baselines_on_same_shots(
    cli, meta_model, regions, catalog, tmp_path
):
    target = regions[catalog.targets()[0].name]
    out = tmp_path / "adapted"
    res = cli(
        "adapt",
        "--model",
        meta_model,
        "--region",
        target,
        "--shots",
        "3",
        "--out",
        out,
        "--json",
        "--seed",
        "4",
        "--method",
        "maml",
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert {m for m in result["metrics"] if "+" not in m} == {"maml", *BASELINES}
    for m in result["metrics"].values():
        assert 0 <= m["overall_accuracy"] <= 1 and -1 <= m["kappa"] <= 1
    assert result["n_support"] == 3 * len(result["classes"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "adapted" and len(cfg["classes"]) == len(result["classes"])
    model, _ = load_bundle(out)
    assert model.head.weight.shape[0] == len(result["classes"])


def test_adapt_without_shots_uses_every_label(meta_model, regions, catalog, tmp_path):
    from cropmeta.adapt.adapt import adapt_region
    from cropmeta.ingest.dataset import open_region

    target = regions[catalog.targets()[1].name]
    result = adapt_region(meta_model, target, tmp_path / "a")
    assert result.n_support == open_region(target).sizes["sample"] and not result.metrics
    assert len(np.unique(result.classes)) == len(result.classes)


def test_adapt_settings_from_python(meta_model, regions, catalog, tmp_path):
    """The Python API takes the adaptation settings the CLI's `--set` does, and refuses the
    ones meta-training fixed, before writing anything."""
    from cropmeta.adapt.adapt import adapt_region
    from cropmeta.models.bundle import load_config

    target = regions[catalog.targets()[1].name]
    adapt_region(meta_model, target, tmp_path / "a", settings={"adapt_steps": 2})
    assert load_config(tmp_path / "a").learner["adapt_steps"] == 2
    with pytest.raises(ValueError, match="inner_steps: fixed by meta-training"):
        adapt_region(meta_model, target, tmp_path / "b", settings={"inner_steps": 2})
    assert not (tmp_path / "b").exists()


def test_meta_train_missing_region(cli, tmp_path):
    out = tmp_path / "m"
    res = cli("meta-train", "--region", tmp_path / "none.zarr", "--out", out)
    assert_one_line_error(res, out, "region dataset not found")


def test_meta_train_not_a_region_dataset(cli, tmp_path):
    (tmp_path / "junk.zarr").mkdir()
    out = tmp_path / "m"
    res = cli("meta-train", "--region", tmp_path / "junk.zarr", "--out", out)
    assert_one_line_error(res, out, "junk.zarr")


def test_adapt_missing_model(cli, regions, catalog, tmp_path):
    out = tmp_path / "a"
    res = cli(
        "adapt",
        "--model",
        tmp_path / "nomodel",
        "--region",
        regions[catalog.targets()[0].name],
        "--shots",
        "2",
        "--out",
        out,
    )
    assert_one_line_error(res, out, "not a cropmeta model folder")


def test_adapt_missing_region(cli, meta_model, tmp_path):
    out = tmp_path / "a"
    res = cli("adapt", "--model", meta_model, "--region", tmp_path / "x.zarr", "--out", out)
    assert_one_line_error(res, out, "region dataset not found")


def test_adapt_too_many_shots(cli, meta_model, regions, catalog, tmp_path):
    out = tmp_path / "a"
    res = cli(
        "adapt",
        "--model",
        meta_model,
        "--region",
        regions[catalog.targets()[0].name],
        "--shots",
        "5000",
        "--out",
        out,
    )
    assert_one_line_error(res, out, "fewer than 2 classes")
