"""pipelines/*.sh: every script parses; the demo and gee-tsda evaluations run end to end with
tiny settings through the installed console script and write their report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cropmeta.learners.names import ALGORITHMS

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
SHARED = PIPELINES.parents[1] / "shared" / "data"  # where shared-data.yaml's paths point
TINY = {"ITERATIONS": "5", "SEEDS": "1", "SHOTS": "1", "LEARNERS": "protonet"}


def run_pipeline(name: str, out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("cropmeta")  # this environment's, not another on PATH
    exe = str(exe) if exe.exists() else "cropmeta"
    return subprocess.run(
        ["bash", str(PIPELINES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        # one thread, as in-process tests: oversubscribed OpenMP threads slow torch tenfold
        env={**os.environ, "OMP_NUM_THREADS": "1", "CROPMETA": exe, "OUT": str(out), **env},
    )


def assert_report(out: Path, targets: set[str]) -> None:
    results = json.loads((out / "results.json").read_text())
    assert {f["target"] for f in results["folds"]} == targets
    assert set(results["summary"]) == targets  # every fold was scored
    report = (out / "report.md").read_text()
    assert all(f"## Held-out region: {t}" in report for t in targets)
    assert list((out / "figures").glob("*.png"))


@pytest.mark.parametrize("script", sorted(p.name for p in PIPELINES.glob("*.sh")))
def test_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(PIPELINES / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_learners_all_is_every_registered_learner():
    source = (PIPELINES / "_evaluate.sh").read_text()
    (line,) = [ln for ln in source.splitlines() if ln.startswith("all_learners=")]
    assert tuple(line.split("=", 1)[1].strip('"').split()) == ALGORITHMS


@pytest.mark.slow
def test_evaluate_demo_on_the_tiny_world(tmp_path):
    out = tmp_path / "demo"
    proc = run_pipeline("evaluate-demo.sh", out, SCALE="tiny", **TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_report(out, {"poltava", "nebraska"})


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data absent: {SHARED}")
def test_evaluate_gee_tsda(tmp_path):
    out = tmp_path / "gee"
    proc = run_pipeline("evaluate-gee-tsda.sh", out, **TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    targets = {f"gee-{t}" for t in ("south-america-2011", "north-america-2011", "europe-2003")}
    targets.add("gee-landsat-europe-2011")
    assert_report(out, targets)  # the four NDVI targets, not the LAI one
    report = (out / "report.md").read_text()
    assert all(f"Published results on {t}" in report for t in targets)


def test_real_data_pipeline_without_shared_data_exits_2(tmp_path):
    """A copy of the pipelines in a repository without ../shared: one line, exit 2."""
    repo = tmp_path / "repo"
    shutil.copytree(PIPELINES, repo / "pipelines")
    proc = subprocess.run(
        ["bash", str(repo / "pipelines" / "evaluate-tiselac.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "CROPMETA": "true", "OUT": str(tmp_path / "out")},
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "shared/data/tiselac-ndvi not found" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_simulated_regions_study_on_the_tiny_world(tmp_path):
    """Both runs, and both again with class heads for the learners that have them, side by
    side, with the choice made on meta-validation over all four."""
    out = tmp_path / "study"
    env = {**TINY, "LEARNERS": "protonet anil", "HEADS": "shared classes"}
    # the study compares the learners: the corrections' scoring is left out (other tests')
    args = ("evaluate-demo.sh", "--no-transductive")
    proc = run_pipeline("study-simulated-regions.sh", out, *args, SCALE="tiny", **env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for run in ("off", "on", "classes-off", "classes-on"):
        assert_report(out / run, {"poltava", "nebraska"})
    for run in ("on", "classes-on"):
        config = json.loads((out / run / "results.json").read_text())["config"]
        assert config["meta"]["augment"] == {"shift_days": 45, "gain": 0.1, "offset": 0.1}
    classes = json.loads((out / "classes-off" / "results.json").read_text())["config"]
    assert classes["learners"] == ["anil"] and classes["meta"]["learner"]["head_init"] == "classes"
    study = (out / "study.md").read_text()
    assert "**poltava**, K = 1" in study and "Chosen on meta-validation over all runs" in study
    assert "| learner | off | on | classes-off | classes-on | Δ macro-F1 |" in study
    assert (out / "simulated-regions.png").read_bytes()[:4] == b"\x89PNG"


def test_class_heads_study_needs_a_learner_with_class_heads(tmp_path):
    env = {**TINY, "HEADS": "classes"}
    proc = run_pipeline("study-simulated-regions.sh", tmp_path / "s", SCALE="tiny", **env)
    assert proc.returncode == 2 and "no learner of [protonet] has class heads" in proc.stderr
    assert not (tmp_path / "s").exists()


def test_simulated_regions_study_refuses_an_unknown_pipeline(tmp_path):
    proc = run_pipeline("study-simulated-regions.sh", tmp_path / "s", "evaluate-atlantis.sh")
    assert proc.returncode == 2 and "no pipeline" in proc.stderr


def test_study_refuses_an_unknown_head_setting(tmp_path):
    env = {**TINY, "HEADS": "shared wide"}
    proc = run_pipeline("study-simulated-regions.sh", tmp_path / "s", SCALE="tiny", **env)
    assert proc.returncode == 2
    expected = "study-simulated-regions.sh: HEADS takes shared and classes, not wide"
    assert proc.stderr.strip() == expected
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_training_seeds_pooled_on_the_tiny_world(tmp_path):
    """TRAIN_SEEDS: one evaluation per training seed, the region datasets prepared once, and
    benchmarks/seed_pool.py's table over them in pooled.md."""
    out = tmp_path / "pooled"
    proc = run_pipeline("evaluate-demo.sh", out, SCALE="tiny", TRAIN_SEEDS="3 4", **TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for seed in (3, 4):
        assert_report(out / f"seed-{seed}", {"poltava", "nebraska"})
        assert json.loads((out / f"seed-{seed}" / "results.json").read_text())["seed"] == seed
    pooled = (out / "pooled.md").read_text()
    assert "training seeds [3, 4]" in pooled and "pooled over the seeds" in pooled
    assert not (out / "pooled.md.tmp").exists()


def test_study_refuses_training_seeds(tmp_path):
    out = tmp_path / "study"
    proc = run_pipeline("study-simulated-regions.sh", out, TRAIN_SEEDS="1 2", **TINY)
    assert proc.returncode == 2 and "TRAIN_SEEDS" in proc.stderr and not out.exists()
