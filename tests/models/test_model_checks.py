"""Models read from disk are checked before use, and training stops on non-finite numbers
(issue 17): damaged weights, configs naming unknown learners or absurd sizes, and data that
cannot be standardised each get one line naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from checks import assert_one_line_error, each

from cropmeta.ingest.dataset import save_region
from cropmeta.learners.loop import Diverged, check_finite


@pytest.fixture()
def model_copy(meta_model, tmp_path) -> Path:
    dest = tmp_path / "meta"
    shutil.copytree(meta_model, dest)
    return dest


def _adapt(cli, model, regions, catalog, out):
    region = regions[catalog.targets()[0].name]
    return cli("adapt", "--model", model, "--region", region, "--out", out, "--shots", "3")


def _edit_config(model: Path, change) -> None:
    config = json.loads((model / "config.json").read_text())
    change(config)
    (model / "config.json").write_text(json.dumps(config))


def test_the_weights_digest_is_recorded(meta_model):
    from cropmeta.fileinfo import sha256

    recorded = json.loads((meta_model / "config.json").read_text())["weights_sha256"]
    assert recorded == sha256(meta_model / "model.safetensors")


def test_a_flipped_byte_in_the_weights_is_refused(cli, model_copy, regions, catalog, tmp_path):
    weights = model_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0x01  # inside the last tensor: still a valid safetensors file
    weights.write_bytes(bytes(data))
    out = tmp_path / "adapted"
    res = _adapt(cli, model_copy, regions, catalog, out)
    assert_one_line_error(res, out, "SHA-256")
    assert "model.safetensors" in res.stderr


def test_suggest_labels_checks_the_weights_too(cli, model_copy, catalog, tmp_path):
    weights = model_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0x01
    weights.write_bytes(bytes(data))
    target = catalog.targets()[0]
    out = tmp_path / "suggested.gpkg"
    res = cli(
        "suggest-labels",
        *("--model", model_copy, "--fields", catalog.path(target.labels)),
        *("--tiles", catalog.path(target.tiles), "--budget", "2", "--out", out),
    )
    assert_one_line_error(res, out, "SHA-256")


def test_an_unknown_algorithm_is_refused(cli, model_copy, regions, catalog, tmp_path):
    _edit_config(model_copy, lambda c: c["learner"].update(algorithm="nope"))
    out = tmp_path / "adapted"
    res = _adapt(cli, model_copy, regions, catalog, out)
    assert_one_line_error(res, out, "unknown algorithm 'nope'")


def test_an_invalid_learner_setting_in_the_config_is_refused(
    cli, model_copy, regions, catalog, tmp_path
):
    _edit_config(model_copy, lambda c: c["learner"].update(inner_steps="many"))
    out = tmp_path / "adapted"
    res = _adapt(cli, model_copy, regions, catalog, out)
    assert_one_line_error(res, out, "invalid maml setting inner_steps")


@pytest.mark.parametrize(
    ("size", "fragment"),
    [(1e9, "encoder.hidden"), (4096, "weights but model.safetensors holds")],
)
def test_an_absurd_size_is_refused_before_anything_is_built(
    cli, model_copy, regions, catalog, tmp_path, size, fragment
):
    _edit_config(model_copy, lambda c: c["encoder"].update(hidden=size))
    out = tmp_path / "adapted"
    res = _adapt(cli, model_copy, regions, catalog, out)
    assert_one_line_error(res, out, fragment)


def test_training_stops_on_a_non_finite_loss_or_weight():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainee = type("T", (), {"opt": opt})()
    check_finite(0.5, trainee, 1)  # finite: nothing happens
    with pytest.raises(Diverged, match="loss is not finite at iteration 7"):
        check_finite(float("nan"), trainee, 7)
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(Diverged, match="weights are not finite after iteration 3"):
        check_finite(0.5, trainee, 3)


def test_data_too_large_to_standardise_is_refused(cli, regions, catalog, tmp_path):
    paths = []
    for entry in catalog.sources():
        ds = xr.open_zarr(regions[entry.name]).load()
        x = ds["x"].values.copy()
        x[0, :, 0] = np.float32(3e38)  # finite, but its square sums overflow float32
        paths.append(save_region(ds.assign(x=(ds["x"].dims, x)), tmp_path / f"{entry.name}.zarr"))
    out = tmp_path / "model"
    res = cli("meta-train", *each("--region", paths), "--out", out, "--iterations", "2")
    assert_one_line_error(res, out, "band values too large to standardise")
