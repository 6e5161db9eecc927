"""pipelines/*.sh: every script parses; the demo and gee-tsda evaluations run end to end with
tiny settings through the installed console script and write their report."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from pipeline_runs import PIPELINES, SHARED, TINY, assert_report, run_pipeline

from cropmeta.learners.names import ALGORITHMS


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


def test_study_refuses_training_seeds(tmp_path):
    out = tmp_path / "study"
    proc = run_pipeline("study-simulated-regions.sh", out, TRAIN_SEEDS="1 2", **TINY)
    assert proc.returncode == 2 and "TRAIN_SEEDS" in proc.stderr and not out.exists()
