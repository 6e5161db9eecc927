"""`evaluate --cv` (what `adapt --method best` would have picked on each draw) and
`evaluate --ensemble` (the best-validated learners averaged), on the tiny world."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def rerun(cli, world, tmp_path_factory):
    """The evaluation of test_evaluate.py at its headline K (3) with `--cv 3 --ensemble 2` (its
    own run, in its own file, so the two long evaluations share the cores)."""
    out = tmp_path_factory.mktemp("rerun")
    res = cli(
        "evaluate", "--catalog", world, "--out", out, "--learner", "maml", "--learner",
        "protonet", "--shots", "3", "--seeds", "2", "--iterations", "15",
        "--task-ways", "3", "--task-shots", "2", "--task-queries", "3", "--cv", "3",
        "--ensemble", "2", "--no-transductive", "--no-automatic", "--forest-trees", "30",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_evaluate_cv_measures_adapt_method_best(rerun):
    """`evaluate --cv 3`: on each draw at the headline K the CV's pick among the learner chosen
    on meta-validation and every baseline, scored on the protocol's own query sets."""
    from cropmeta.adapt.cross_validate import best_method
    from cropmeta.evaluate.report import validation_pick

    out, results = rerun
    report = (out / "report.md").read_text()
    assert "### Following `cropmeta adapt --cv 3 --method best` (K = 3)" in report
    runs = {
        (r["target"], r["seed"], r["method"]): r["metrics"]
        for r in results["runs"]
        if "metrics" in r and r["shots"] == 3
    }
    for target, choice in results["cv_choice"].items():
        learner, _ = validation_pick(results["training"][target], ["maml", "protonet"])
        assert choice["learner"] == learner and choice["draws"]
        for d in choice["draws"]:
            assert d["pick"] == best_method(d["cv"]) and set(d["cv"]) == set(d["query"])
            assert learner in d["query"] and "random_forest" in d["query"]
            for method, metrics in d["query"].items():  # the protocol's own draw, the same scores
                assert metrics == runs[(target, d["seed"], method)]


@pytest.mark.slow
def test_evaluate_ensemble_of_the_best_validated_learners(rerun, tmp_path):
    """`evaluate --ensemble 2`: on every draw, the two learners with the best meta-validation
    accuracy adapted and averaged, scored as a learner beside the others (the same figures as
    `adapt --model A --model B` on that draw)."""
    from cropmeta.adapt.ensemble import ENSEMBLE, adapt_ensemble

    out, results = rerun
    report = (out / "report.md").read_text()
    assert "Ensemble of the 2 best-validated learners (" in report
    for target, members in results["ensembles"].items():
        ranked = sorted(
            ["maml", "protonet"],
            key=lambda m: -results["training"][target][m]["history"]["best_val_acc"],
        )
        assert members == ranked
        runs = [r for r in results["runs"] if r["target"] == target and r["method"] == ENSEMBLE]
        assert len(runs) == 2 and all(r["learner"] for r in runs)  # K = 3, 2 draws
        assert ENSEMBLE in results["summary"][target]
        one = runs[-1]
        res = adapt_ensemble(
            [results["models"][target][m] for m in members],
            results["regions"][target],
            tmp_path / target,
            shots=one["shots"],
            seed=one["seed"],
            baselines=False,
        )
        assert res.metrics[ENSEMBLE] == one["metrics"]
