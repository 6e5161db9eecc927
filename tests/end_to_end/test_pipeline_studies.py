"""The studies' pipelines end to end on the tiny world: simulated regions and class heads side
by side, and evaluations pooled over training seeds (apart from test_pipelines.py so the two
long runs share the cores with the rest)."""

from __future__ import annotations

import json

import pytest
from pipeline_runs import TINY, assert_report, run_pipeline


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
    # the world is made and its regions preprocessed once: the three later runs start from them
    assert proc.stdout.count("evaluate-demo.sh: reusing") == 3, proc.stdout[-2000:]
    for run in ("off", "on", "classes-off", "classes-on"):
        assert_report(out / run, {"poltava", "nebraska"})
    for run in ("on", "classes-on"):
        config = json.loads((out / run / "results.json").read_text())["config"]
        assert config["meta"]["augment"] == {"shift_days": 45, "gain": 0.1, "offset": 0.1}
    classes = json.loads((out / "classes-off" / "results.json").read_text())["config"]
    assert classes["learners"] == ["anil"]
    assert classes["learner_settings"]["anil"]["head_init"] == "classes"
    study = (out / "study.md").read_text()
    assert "**poltava**, K = 1" in study and "Chosen on meta-validation over all runs" in study
    assert "| learner | off | on | classes-off | classes-on | Δ macro-F1 |" in study
    assert (out / "simulated-regions.png").read_bytes()[:4] == b"\x89PNG"


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
