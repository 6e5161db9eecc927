"""Shared fixtures: a tiny synthetic world written as real files, and the stages run on it once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cropmeta.catalog import load_catalog
from cropmeta.cli.main import app
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.learners.meta_train import MetaTrainConfig, meta_train
from cropmeta.synth import make_world

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# The tests' models are tiny: one thread is as fast, and immune to oversubscription when the
# machine is busy (two OpenMP threads per process on 2 cores slowed the suite 10× under load).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The tiny world's catalog path."""
    return make_world(tmp_path_factory.mktemp("world") / "world", seed=7, scale="tiny")


@pytest.fixture(scope="session")
def catalog(world):
    return load_catalog(world)


@pytest.fixture(scope="session")
def regions(world, catalog, tmp_path_factory) -> dict[str, Path]:
    """Every region of the tiny world preprocessed to a region dataset."""
    root = tmp_path_factory.mktemp("regions")
    out = {}
    for entry in catalog.regions:
        out[entry.name] = preprocess_catalog_region(world, entry.name, root / f"{entry.name}.zarr")
        out[entry.name] = root / f"{entry.name}.zarr"
    return out


@pytest.fixture(scope="session")
def meta_model(regions, catalog, tmp_path_factory) -> Path:
    """A briefly meta-trained MAML-TempCNN on the tiny world's source regions."""
    cfg = MetaTrainConfig(iterations=40, n_way=4, k_shot=3, q_query=4, val_every=20, val_tasks=4)
    out = tmp_path_factory.mktemp("models") / "meta"
    return meta_train([regions[r.name] for r in catalog.sources()], out, cfg, seed=3)


@pytest.fixture(scope="session")
def adapted(meta_model, regions, catalog, tmp_path_factory) -> Path:
    """The meta-model adapted to the first target region from 3 fields per class (mappable)."""
    from cropmeta.adapt.adapt import adapt_region

    out = tmp_path_factory.mktemp("adapted") / "model"
    adapt_region(meta_model, regions[catalog.targets()[0].name], out, shots=3, seed=0)
    return out


@pytest.fixture(scope="session")
def cli():
    """Run ``cropmeta`` in-process; returns the click Result (exit_code, stdout, stderr).
    torch's thread count, which every command sets (``--threads``), is restored after each."""
    runner = CliRunner()

    def invoke(*args: str):
        before = torch.get_num_threads()
        try:
            return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        finally:
            torch.set_num_threads(before)

    return invoke


#: The longest test files, longest first (measured: `pytest --durations`, fresh-clone CI runs)
LONGEST = (
    "test_pipeline_studies.py",
    "test_notebook.py",
    "test_evaluate.py",
    "test_learner_matrix.py",
    "test_own_data_walkthrough.py",
    "test_evaluate_cv.py",
    "test_pipelines.py",
    "test_evaluate_reruns.py",
    "test_benchmarks.py",
    "test_demo.py",
    "test_cross_validate.py",
)


def pytest_collection_modifyitems(config, items):
    """The longest files first, then those with slow tests, then the rest: pytest-xdist
    (``--dist loadfile --no-loadscope-reorder``; by default it reorders files by their number of
    tests) hands files to the workers in this order, so the long ones start at once and the
    short ones fill in around them (longest-processing-time-first scheduling), rather than one
    long file starting last on an otherwise idle machine."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item) -> tuple[int, int]:
        name = item.path.name
        return (LONGEST.index(name) if name in LONGEST else len(LONGEST), item.path not in slow)

    items.sort(key=rank)  # stable: a file's tests keep their order
