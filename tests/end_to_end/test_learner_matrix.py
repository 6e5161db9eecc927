"""Every learner with every encoder through `cropmeta meta-train` → `cropmeta adapt` → a model
that predicts, on the demo world and on a real region dataset (gee-tsda, baselines alongside).

The runs are short (a couple of meta-iterations): this checks that each combination is wired
end to end — configs, checkpoints, adaptation, the adapted bundle — not how well it learns
(tests/learners/test_learners.py does that).
"""

import json
from pathlib import Path

import pytest
import torch
from checks import each
from test_real_data import CATALOG, SHARED

from cropmeta.baselines.names import BASELINES
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.learners.registry import LEARNERS
from cropmeta.models.bundle import load_bundle, load_config

ENCODERS = ("tempcnn", "lstm", "transformer", "ltae")
QUICK = ("--iterations", "2", "--ways", "3", "--shots", "2", "--queries", "2", "--meta-batch", "2")


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("algorithm", sorted(LEARNERS))
def test_learner_and_encoder_meta_train_adapt_predict(
    cli, regions, catalog, tmp_path, algorithm, encoder
):
    sources = [regions[r.name] for r in catalog.sources()]
    target = regions[catalog.targets()[0].name]
    meta, adapted = tmp_path / "meta", tmp_path / "adapted"
    res = cli(
        "meta-train", *each("--region", sources), "--algorithm", algorithm, "--encoder", encoder,
        "--out", meta, *QUICK,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_config(meta).learner["algorithm"] == algorithm
    res = cli(
        "adapt", "--model", meta, "--region", target, "--out", adapted, "--method", algorithm
    )  # fmt: skip  (the learner's model, not the automatic pick)
    assert res.exit_code == 0, res.output

    model, cfg = load_bundle(adapted)
    data = RegionArrays.load(target)
    assert cfg.kind == "adapted" and cfg.encoder.name == encoder
    assert {c.code for c in cfg.classes} == {int(c) for c in set(data.codes)}
    with torch.no_grad():
        scores = model(torch.from_numpy(cfg.normaliser(data.x[:7])), torch.from_numpy(data.doy))
    assert scores.shape == (7, len(cfg.classes)) and torch.isfinite(scores).all()


@pytest.fixture(scope="module")
def gee(tmp_path_factory) -> dict[str, Path]:
    if not SHARED.is_dir():
        pytest.skip(f"shared data absent: {SHARED}")
    from cropmeta.ingest.catalog_regions import preprocess_catalog_region

    root = tmp_path_factory.mktemp("gee")
    out = {}
    for name in ("gee-europe-2011", "gee-north-america-2011"):
        preprocess_catalog_region(CATALOG, name, root / f"{name}.zarr")
        out[name] = root / f"{name}.zarr"
    return out


#: On real data: every learner with the TempCNN, and every encoder with MAML (the demo-world
#: matrix above runs every pair; here what changes is the data, one band on another calendar).
REAL_PAIRS = sorted({(a, "tempcnn") for a in LEARNERS} | {("maml", e) for e in ENCODERS})


@pytest.mark.slow
@pytest.mark.parametrize(("algorithm", "encoder"), REAL_PAIRS)
def test_every_learner_and_encoder_on_a_real_region_dataset(cli, gee, tmp_path, algorithm, encoder):
    """gee-tsda Europe 2011 → North America 2011: one NDVI band on the MODIS 16-day calendar,
    another calendar from the demo world's. With maml (once per encoder) at k = 5, every
    baseline scored on the same shots; the other learners adapt to every labelled series and
    predict (the baselines do not depend on the learner: scoring them 44 times took CI ~15 min;
    every learner × encoder pair on this data took 5 min more than these 14)."""
    meta = tmp_path / "meta"
    res = cli(
        "meta-train", "--region", gee["gee-europe-2011"], "--algorithm", algorithm,
        "--encoder", encoder, "--out", meta, "--iterations", "3", "--ways", "4", "--shots", "3",
        "--queries", "3",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_config(meta).encoder.name == encoder
    target, adapted = gee["gee-north-america-2011"], tmp_path / "adapted"
    scored = ["--shots", "5"] if algorithm == "maml" else []
    res = cli(
        "adapt", "--model", meta, "--region", target, *scored, "--out", adapted, "--json",
        "--method", algorithm,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)["metrics"]
    if scored:
        assert {m for m in metrics if "+" not in m} == {algorithm, *BASELINES}
        assert all(0 <= m["overall_accuracy"] <= 1 for m in metrics.values())
    model, cfg = load_bundle(adapted)
    data = RegionArrays.load(target)
    with torch.no_grad():
        scores = model(torch.from_numpy(cfg.normaliser(data.x[:7])), torch.from_numpy(data.doy))
    assert scores.shape == (7, len(cfg.classes)) and torch.isfinite(scores).all()


def test_learner_settings_from_the_command_line(cli, regions, catalog, tmp_path):
    """`--set KEY=VALUE` reaches the learner, is recorded in the model and used in adaptation,
    where only adaptation settings may change; `cropmeta learners` lists the settings."""
    sources = [regions[r.name] for r in catalog.sources()]
    meta, adapted = tmp_path / "meta", tmp_path / "adapted"
    res = cli(
        "meta-train", *each("--region", sources), "--algorithm", "alfa", "--out", meta, *QUICK,
        "--set", "head_init=prototypes", "--set", "adapt_steps=7",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    learner = load_config(meta).learner
    assert learner["head_init"] == "prototypes" and learner["adapt_steps"] == 7
    target = regions[catalog.targets()[0].name]
    res = cli("adapt", "--model", meta, "--region", target, "--out", adapted,
              "--set", "adapt_steps=3", "--method", "alfa")  # fmt: skip
    assert res.exit_code == 0, res.output
    learner = load_config(adapted).learner  # adaptation settings may change; the others stay
    assert learner["head_init"] == "prototypes" and learner["adapt_steps"] == 3
    other = tmp_path / "other"
    res = cli("adapt", "--model", meta, "--region", target, "--out", other,
              "--set", "head_init=shared")  # fmt: skip
    assert res.exit_code == 2 and "fixed by meta-training" in _flat(res.stderr)
    assert not other.exists()
    listing = cli("learners")
    assert listing.exit_code == 0 and "head_init" in listing.stdout


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("foo=1", "'foo' is no setting of maml"),
        ("head_init=proto", "head_init='proto' for maml"),
        ("adapt_steps", "expected KEY=VALUE"),
    ],
)
def test_bad_learner_setting(cli, regions, catalog, tmp_path, setting, fragment):
    sources = [regions[r.name] for r in catalog.sources()]
    meta = tmp_path / "meta"
    res = cli("meta-train", *each("--region", sources), "--out", meta, "--set", setting)
    assert res.exit_code == 2
    assert fragment in _flat(res.stderr)
    assert not meta.exists()


def _flat(text: str) -> str:
    """An error panel's text on one line (rich wraps it in a box)."""
    return " ".join(text.replace("│", " ").split())
