"""adapt → score → save (issue 20, item 2): adapting chooses and fits from the labelled
support alone and keeps the model in memory; scoring alone reads the query's labels; saving
writes what was adapted; the CLI reads the meta-trained model once."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from cropmeta.adapt.adapt import adapt, adapt_region, open_meta_model
from cropmeta.adapt.result import save
from cropmeta.adapt.score import score
from cropmeta.errors import InputError
from cropmeta.models.bundle import load_config


@pytest.fixture(scope="module")
def target(regions, catalog):
    return regions[catalog.targets()[0].name]


def test_adapt_keeps_the_model_in_memory_and_scores_nothing(meta_model, target, tmp_path):
    result = adapt(meta_model, target, shots=3, seed=2, baselines=False)
    assert result.model is not None and result.model_dir is None
    assert result.n_query > 0 and result.metrics == {} and result.query_truth is None
    assert not tmp_path.joinpath("m").exists()
    score(result, transductive=False)
    assert set(result.metrics) == {result.learner}
    assert len(result.query_truth) == len(result.query_proba) > 0
    save(result, tmp_path / "m")
    assert load_config(tmp_path / "m").history["adaptation"]["metrics"] == result.metrics


def test_the_three_steps_are_what_adapt_region_does(meta_model, target, tmp_path):
    stepped = score(adapt(meta_model, target, shots=3, seed=2), transductive=False)
    whole = adapt_region(meta_model, target, tmp_path / "m", shots=3, seed=2, transductive=False)
    assert stepped.metrics == whole.metrics and stepped.saved == whole.saved
    assert np.array_equal(stepped.query_truth, whole.query_truth)


def _count_reads(monkeypatch) -> list:
    """Every read of a model folder's config or weights, by folder."""
    import cropmeta.models.bundle as bundle

    reads: list = []
    config, weights = bundle.load_config, bundle._weights
    monkeypatch.setattr(bundle, "load_config", lambda p: reads.append(str(p)) or config(p))
    monkeypatch.setattr(bundle, "_weights", lambda p, c: reads.append(str(p)) or weights(p, c))
    return reads


def test_an_opened_model_is_not_read_again(meta_model, target, monkeypatch):
    opened = open_meta_model(meta_model)
    reads = _count_reads(monkeypatch)
    adapt(opened, target, shots=3, seed=2)  # the baselines' source classifier and samples too
    assert reads == []


def test_the_cli_reads_the_model_once(meta_model, target, tmp_path, monkeypatch):
    from cropmeta.cli.main import app

    reads = _count_reads(monkeypatch)
    args = ["adapt", "--model", str(meta_model), "--region", str(target), "--out",
            str(tmp_path / "a"), "--method", "maml", "--shots", "3"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert reads.count(str(meta_model)) == 2  # its config, then its weights: once each


def test_an_adapted_model_is_refused_when_opened(meta_model, target, tmp_path):
    adapted = adapt_region(meta_model, target, tmp_path / "m", seed=0, method="maml")
    with pytest.raises(InputError, match="already adapted"):
        open_meta_model(adapted)
