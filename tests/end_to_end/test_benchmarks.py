"""The on-demand benchmarks that evaluate a protocol still run: on the tiny world or on
results written here (their figures are in BENCHMARKS.md, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # benchmark scripts run on the tiny world

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    """A benchmark script as a module (they are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cv_selection_benchmark_runs_on_the_tiny_world(meta_model, regions, catalog):
    """benchmarks/cv_selection.py: a table per target and the summary line."""
    script = BENCHMARKS / "cv_selection.py"
    target = regions[catalog.targets()[0].name]
    args = [
        f"{meta_model}={target}",
        "--shots",
        "3",
        "--draws",
        "2",
        "--folds",
        "3",
        "--trees",
        "30",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "| following the CV's pick |" in run.stdout
    assert "Over 2 draws: the CV's pick was the query's best in" in run.stdout


def test_seed_pool_pools_draws_over_training_seeds(tmp_path):
    """benchmarks/seed_pool.py: means over every (seed, draw) pair; a verdict per seed and
    pooled; runs whose settings differ are refused."""

    def run(seed: int, learner: tuple[float, float], source_only: tuple[float, float]) -> Path:
        def entry(method, figures, draw):
            oa, f1 = figures
            metrics = {"overall_accuracy": oa + draw / 100, "macro_f1": f1 + draw / 100}
            learner_flag = method == "anil"
            return {"target": "poltava", "shots": 5, "seed": seed + draw, "method": method,
                    "learner": learner_flag, "metrics": metrics}  # fmt: skip

        runs = [entry("anil", learner, d) for d in range(2)]
        runs += [entry("source_only", source_only, d) for d in range(2)]
        folder = tmp_path / str(seed)
        folder.mkdir()
        results = {"seed": seed, "config": {"learners": ["anil"], "shots": [5]}, "runs": runs}
        (folder / "results.json").write_text(json.dumps(results))
        return folder

    script = BENCHMARKS / "seed_pool.py"
    # seed 1: source-only ahead; seed 2: the learner far ahead; pooled, the learner wins
    folders = [run(1, (0.70, 0.70), (0.80, 0.80)), run(2, (0.90, 0.90), (0.60, 0.60))]
    out = subprocess.run([sys.executable, script, *folders], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| **anil** | 0.805 | 0.805 | 0.705, 0.905 |" in out.stdout
    assert "| source_only | 0.705 | 0.705 | 0.805, 0.605 |" in out.stdout
    assert "anil, pooled: wins both; both metrics in 1 of 2 seeds alone." in out.stdout
    alone = subprocess.run([sys.executable, script, folders[0]], capture_output=True, text=True)
    assert "anil, pooled: loses both; both metrics in 0 of 1 seeds alone." in alone.stdout
    again = subprocess.run([sys.executable, script, folders[0], folders[0]], capture_output=True)
    assert again.returncode != 0 and b"with a new seed" in again.stderr


def test_speed_benchmark_arms_take_the_same_meta_gradient():
    """benchmarks/maml_speed.py: the arms with a worker thread per core and cropmeta's engine
    give the plain loop's meta-gradient (``higher``, a benchmark-only package, is compared
    there)."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("maml_speed", BENCHMARKS / "maml_speed.py")
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    grads = {}
    arms = ("plain loop", *speed.WORKERS, "cropmeta")
    for arm in arms:
        model, batch, doy = speed.setup(hidden=8, tasks=3)  # hidden 4: the loss explodes
        speed.run_method(arm, model, batch, doy, threads=2)
        grads[arm] = torch.cat([p.grad.flatten() for p in model.parameters()])
    for arm in arms[1:]:
        torch.testing.assert_close(grads[arm], grads["plain loop"], rtol=1e-4, atol=1e-6)
    assert grads["plain loop"].abs().sum() > 0


def test_adaptation_study_retakes_the_automatic_choice_with_a_default_correction():
    """benchmarks/adaptation_study.py: `best` re-taken with the pick's corrected row of the
    same draw; per data set, the means over the targets of the means over the draws."""
    study = _load("adaptation_study")

    def run(target, seed, method, oa, notes=""):
        metrics = {"overall_accuracy": oa, "macro_f1": oa}
        return {"target": target, "shots": 5, "seed": seed, "method": method,
                "metrics": metrics, "notes": notes}  # fmt: skip

    runs = [
        run("a", 0, "rf", 0.5), run("a", 0, "rf+timematch", 0.7),
        run("a", 0, "best", 0.5, "picked rf"),
        run("b", 0, "rf", 0.3), run("b", 0, "best", 0.3, "picked rf"),  # no corrected row
    ]  # fmt: skip
    again = study.with_default(runs, "timematch")
    assert [r["metrics"]["overall_accuracy"] for r in again] == [0.7, 0.3]
    table = study.data_set_table(runs + again, 5)
    assert abs(table["best+timematch"][0] - 0.5) < 1e-12 and "rf+timematch" not in table
    runs[2]["cv_leader"] = "rf"  # the plain rule's pick, where the run recorded it
    plain = study.leader_rule(runs, "timematch")
    assert [(r["target"], r["metrics"]["overall_accuracy"]) for r in plain] == [("a", 0.7)]


def test_meta_cost_reads_time_to_best_and_accuracy(tmp_path):
    """benchmarks/meta_cost.py on a results.json written here: the first best validation's time,
    plus the pre-training with a pre-trained start, over the pre-training; the accuracies."""
    meta_cost = _load("meta_cost")
    transfer = {"seconds": 2.0}
    history = {"val_acc": [0.5, 0.8, 0.8], "val_seconds": [1.0, 3.0, 5.0], "seconds": 6.0,
               "iteration": [1, 2, 3], "init": "random", "transfer": transfer}  # fmt: skip
    warm = {**history, "init": "pretrained", "val_acc": [0.9, 0.1, 0.2]}
    del warm["transfer"]
    metrics = {"overall_accuracy": 0.6, "macro_f1": 0.5}
    runs = [{"method": m, "shots": 5, "target": "t", "metrics": metrics}
            for m in ("maml", "protonet", "transfer_all")]  # fmt: skip
    results = {"folds": [{"target": "t", "sources": ["s"]}], "runs": runs,
               "training": {"t": {"maml": {"history": history},
                                  "protonet": {"history": warm}}}}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(results))
    maml, protonet = meta_cost.rows(tmp_path, 5)
    assert "| maml | random | 3 | 3.0 | 6.0 | 2.0 | 1.50 | 0.600 / 0.500 | 0.600 / 0.500 |" in maml
    assert "| protonet | pretrained | 3 | 3.0 |" in protonet and "| 1.50 |" in protonet
    assert meta_cost.time_to_best({"val_acc": [0.2]}) is None  # no times recorded
