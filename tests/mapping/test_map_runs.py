"""How `cropmeta map` runs: on Dask with the same bytes as in one process, and resuming after
a kill with the same bytes as an uninterrupted run, never leaving a partial output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import geopandas as gpd
import pytest

from cropmeta.mapping.crop_map import map_region

LAYERS = ("classes", "probabilities", "uncertainty")


@pytest.fixture(scope="module")
def setup(adapted, world, catalog):
    target = catalog.targets()[0].name
    return adapted, catalog.path(catalog.targets()[0].tiles), world.parent / target / "fields.gpkg"


def _run(setup, out, **options):
    model, tiles, fields = setup
    return map_region(
        model,
        tiles,
        out,
        block=16,
        probabilities=True,
        uncertainty="entropy",
        fields=fields,
        **options,
    )


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    """The single-process, uninterrupted run every other run must reproduce byte for byte."""
    return _run(setup, tmp_path_factory.mktemp("ref") / "map.tif", workers=1)


def _same_outputs(a, b) -> None:
    for kind in LAYERS:
        assert a.outputs[kind].read_bytes() == b.outputs[kind].read_bytes(), kind
    fa, fb = gpd.read_file(a.outputs["fields"]), gpd.read_file(b.outputs["fields"])
    cols = ["class_code", "probability", "uncertainty_entropy", "pixels"]
    assert fa[cols].equals(fb[cols])


@pytest.mark.slow
def test_dask_local_cluster_is_bit_identical_to_one_process(setup, reference, tmp_path):
    result = _run(setup, tmp_path / "map.tif", workers=2)
    assert result.computed == result.blocks == reference.blocks > 2
    _same_outputs(result, reference)


def test_a_running_scheduler_address_gives_the_same_bytes(setup, reference, tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        result = _run(setup, tmp_path / "map.tif", scheduler=cluster.scheduler_address)
    _same_outputs(result, reference)


def test_killed_run_resumes_only_unfinished_blocks_with_the_same_bytes(setup, reference, tmp_path):
    model, tiles, fields = setup
    out = tmp_path / "map.tif"
    args = [
        sys.executable,
        "-m",
        "cropmeta",
        "map",
        "--model",
        model,
        "--tiles",
        tiles,
        "--out",
        out,
        "--block",
        "16",
        "--probabilities",
        "--uncertainty",
        "entropy",
        "--fields",
        fields,
        "--workers",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(a) for a in args], env=env, start_new_session=True)
    done = tmp_path / f".{out.name}.cropmeta-work" / "done"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if done.is_dir() and len(os.listdir(done)) >= 3:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    finished = len(os.listdir(done))
    assert 3 <= finished < reference.blocks
    assert not out.exists() and not list(tmp_path.glob(f".{out.name}.tmp-*"))  # no partial map
    result = _run(setup, out, workers=1)
    assert result.reused == finished and result.computed == reference.blocks - finished
    _same_outputs(result, reference)
    assert not done.parent.exists()  # the work folder goes once the outputs are complete


def test_a_rerun_with_other_arguments_starts_afresh(setup, tmp_path):
    model, tiles, _ = setup
    out = tmp_path / "map.tif"
    first = map_region(model, tiles, out, block=32, workers=1)
    work = tmp_path / f".{out.name}.cropmeta-work"
    assert first.computed == first.blocks and not work.exists()
    # leave a finished work folder behind as a killed run would, then change an option
    (work / "done").mkdir(parents=True)
    (work / "run.json").write_text("{}")
    second = map_region(model, tiles, out, block=64, workers=1)
    assert second.reused == 0 and second.computed == second.blocks
