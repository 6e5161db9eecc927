"""`cropmeta evaluate` on the tiny world: shared draws, metrics with confidence intervals,
JSON, Markdown report and figures."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from cropmeta.evaluate.protocol import EvaluationConfig, confidence, plan_folds


@pytest.fixture(scope="module")
def evaluation(cli, world, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation")
    res = cli(
        "evaluate", "--catalog", world, "--out", out, "--learner", "maml", "--learner",
        "protonet", "--shots", "1", "--shots", "3", "--seeds", "2", "--iterations", "15",
        "--task-ways", "3", "--task-shots", "2", "--task-queries", "3", "--forest-trees", "30",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_every_method_is_scored_on_the_same_draws(evaluation, catalog):
    _, results = evaluation
    targets = {t.name for t in catalog.targets()}
    assert {f["target"] for f in results["folds"]} == targets
    scored = [r for r in results["runs"] if "metrics" in r]
    methods = {r["method"] for r in scored}
    assert {"maml", "protonet", "from_scratch", "random_forest", "transfer_head"} <= methods
    by_draw: dict = {}
    for r in scored:
        by_draw.setdefault((r["target"], r["shots"], r["seed"]), set()).add(
            (r["n_support"], r["n_query"], tuple(r["classes"]))
        )
    assert by_draw and all(len(v) == 1 for v in by_draw.values())  # identical support/query
    # the corrections with the query's series, and the automatic choice (K = 3 only: K ≥ 2)
    assert {"maml+label_shift", "protonet+soft_kmeans", "presto_forest"} <= methods
    best = [r for r in scored if r["method"] == "best"]
    assert {r["shots"] for r in best} == {3} and len(best) == 2 * len(targets)
    for r in best:
        picked = r["notes"].removeprefix("picked ")
        twin = next(
            o for o in scored
            if (o["target"], o["shots"], o["seed"], o["method"])
            == (r["target"], r["shots"], r["seed"], picked)
        )  # fmt: skip
        assert r["metrics"] == twin["metrics"]
    assert results["environment"]["threads"] >= 1  # figures repeat at the same thread count
    for r in scored:
        n = len(r["classes"])
        confusion = np.array(r["details"]["confusion"])
        assert confusion.shape == (n, n) and 0 < confusion.sum() <= r["n_query"]
        assert len(r["details"]["per_class_f1"]) == n
        assert 0 <= r["metrics"]["macro_f1"] <= 1 and r["seconds"] >= 0


@pytest.mark.slow
def test_summary_has_means_and_confidence_intervals(evaluation):
    _, results = evaluation
    for by_method in results["summary"].values():
        for by_k in by_method.values():
            for entry in by_k.values():
                f1 = entry["macro_f1"]
                assert f1["n"] == 2 and f1["low"] <= f1["mean"] <= f1["high"]
    assert len({m["maml"] for m in results["models"].values()}) == 1  # same sources, one model
    for by_learner in results["training"].values():
        assert set(by_learner) == {"maml", "protonet"}
        assert all(v["seconds"] > 0 and v["history"]["iteration"] for v in by_learner.values())


def test_the_report_says_how_the_meta_learners_were_trained():
    from cropmeta.evaluate.outputs import meta_training_line
    from cropmeta.learners.meta_train import MetaTrainConfig

    meta = MetaTrainConfig(val_regions=["mazovia"], augment={"shift_days": 45, "gain": 0.1})
    line = meta_training_line(meta.model_dump())
    assert "5-way 5-shot tasks with 10 queries per class, 300 iterations" in line
    assert "held-out source region(s) mazovia" in line
    assert "±45 days of phenology shift, band gain ±0.1, offset ±0 per task" in line


@pytest.mark.slow
def test_report_and_figures(evaluation, catalog):
    out, _ = evaluation
    report = (out / "report.md").read_text()
    for t in catalog.targets():
        assert f"## Held-out region: {t.name}" in report
        for png in (f"{t.name}-macro_f1.png", f"{t.name}-confusion.png", f"{t.name}-map.png"):
            assert f"figures/{png}" in report
            assert (out / "figures" / png).read_bytes()[:4] == b"\x89PNG"
    assert "confidence intervals overlap" in report or "clearly better" in report
    assert "Chosen without the target's labels" in report or "No learner has meta-valid" in report
    assert "suggested vs random" in report
    assert "validation tasks from a 20% share of every source region's samples" in report
    assert "simulated regions (task augmentation): off." in report
    threads = json.loads((out / "results.json").read_text())["environment"]["threads"]
    assert f"is trained once (seed 0, {threads} torch threads)" in report
    assert "not training noise" in report and "benchmarks/seed_pool.py" in report
    for heading in ("Task variability", "adaptation gain", "meta-overfitting", "Meta-underfitting"):
        assert heading in report


@pytest.mark.slow
def test_html_report_shows_the_same_tables_and_figures(evaluation, catalog):
    from html.parser import HTMLParser

    out, _ = evaluation
    page = (out / "report.html").read_text()
    found: dict[str, list] = {"img": [], "table": [], "h2": []}

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in found:
                found[tag].append(dict(attrs))

    Collect().feed(page)
    report = (out / "report.md").read_text()
    assert len(found["h2"]) == report.count("\n## ")
    assert len(found["table"]) == report.count("\n|---")
    images = [a["src"] for a in found["img"]]  # embedded: the page is sent as one file
    assert len(images) == report.count("](figures/")
    embedded = {base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in images}
    for t in catalog.targets():
        assert (out / "figures" / f"{t.name}-macro_f1.png").read_bytes() in embedded


@pytest.mark.slow
def test_label_budget_and_diagnostics_are_in_the_results(evaluation, catalog):
    _, results = evaluation
    for t in catalog.targets():
        diagnostics = results["diagnostics"][t.name]
        assert set(diagnostics["meta_fit_gap"]) == {"maml", "protonet"}
        assert diagnostics["task_distances"]["regions"][-1] == t.name
        cmp = results["label_budget"][t.name]
        assert len(cmp["runs"]) == 2 and cmp["budget"] > 0
        for run in cmp["runs"]:
            assert {"criterion", "random"} <= set(run)


def test_confidence_interval_is_student_t():
    ci = confidence([0.5, 0.7], bounds=(-math.inf, math.inf))
    assert ci["mean"] == pytest.approx(0.6)
    assert ci["high"] - ci["mean"] == pytest.approx(12.706 * 0.1414 / math.sqrt(2), rel=1e-3)
    clipped = confidence([0.5, 0.7], bounds=(0.0, 1.0))  # accuracy cannot leave [0, 1]
    assert (clipped["low"], clipped["high"]) == (0.0, 1.0)
    assert math.isnan(confidence([0.4])["low"])


def test_folds_leave_one_region_out(world):
    cfg = EvaluationConfig(loro=True, regions=["brandenburg", "beauce", "mazovia"])
    folds = plan_folds(world, cfg)
    assert [f.target for f in folds] == ["brandenburg", "beauce", "mazovia"]
    assert all(f.target not in f.sources and len(f.sources) == 2 for f in folds)


def test_unknown_region_is_refused(cli, world, tmp_path):
    res = cli("evaluate", "--catalog", world, "--out", tmp_path / "e", "--target", "atlantis")
    assert res.exit_code == 2 and "atlantis" in res.stderr


def test_a_setting_no_chosen_learner_has_is_refused(cli, world, tmp_path):
    out = tmp_path / "e"
    res = cli("evaluate", "--catalog", world, "--out", out, "--learner", "protonet",
              "--set", "head_init=prototypes")  # fmt: skip
    assert res.exit_code == 2
    assert "'head_init' is no setting of protonet" in " ".join(res.stderr.replace("│", " ").split())
    assert not out.exists()


def _entry(mean: float) -> dict:
    return {"mean": mean, "low": mean - 0.05, "high": mean + 0.05, "n": 5}


@pytest.mark.parametrize(
    "val_acc, chosen, verdict",
    [
        ({"maml": 0.9, "protonet": 0.8}, "maml", "above every baseline in both metrics"),
        ({"maml": 0.7, "protonet": 0.8}, "protonet", "in macro-F1 only"),
        ({"maml": -1.0, "protonet": 0.8}, "protonet", "in macro-F1 only"),
        ({"maml": -1.0, "protonet": -1.0}, None, "none can be chosen"),
    ],
)
def test_the_learner_chosen_on_meta_validation(val_acc, chosen, verdict):
    """The report names the learner picked by meta-validation accuracy (never by the target's
    scores) and says whether it beats every baseline."""
    from cropmeta.evaluate.report import validation_choice

    summary = {
        "maml": {"5": {"macro_f1": _entry(0.70), "overall_accuracy": _entry(0.80)}},
        "protonet": {"5": {"macro_f1": _entry(0.66), "overall_accuracy": _entry(0.70)}},
        "random_forest": {"5": {"macro_f1": _entry(0.65), "overall_accuracy": _entry(0.75)}},
    }
    training = {m: {"history": {"best_val_acc": a}} for m, a in val_acc.items()}
    text = validation_choice(summary, training, ["maml", "protonet"], 5)
    assert verdict in text
    assert chosen is None or f"**{chosen}**" in text


@pytest.mark.parametrize(
    "forest_f1, verdict",
    [
        (0.50, "maml is clearly better: use it."),
        (0.68, "no clear winner"),
        (0.90, "`cropmeta adapt --method random_forest` saves it as the model to map"),
    ],
)
def test_the_recommendation_says_what_to_map(forest_f1, verdict):
    """Where a baseline is clearly better, the report says how to save that baseline."""
    from cropmeta.evaluate.report import recommendation

    summary = {
        "maml": {"5": {"macro_f1": _entry(0.70)}},
        "random_forest": {"5": {"macro_f1": _entry(forest_f1)}},
    }
    assert verdict in recommendation(summary, ["maml"], 5)


def test_the_recommendation_says_how_to_save_an_ensemble():
    from cropmeta.evaluate.report import recommendation

    summary = {
        "ensemble": {"5": {"macro_f1": _entry(0.80)}},
        "maml": {"5": {"macro_f1": _entry(0.70)}},
        "random_forest": {"5": {"macro_f1": _entry(0.50)}},
    }
    text = recommendation(summary, ["maml", "ensemble"], 5)
    assert (
        "ensemble is clearly better: use it (`cropmeta adapt` with one `--model` per member)"
        in text
    )


def test_evaluate_cv_needs_folds_the_draws_can_fill():
    from cropmeta.evaluate.cv_choice import cv_section

    results = {
        "config": {"learners": ["maml"], "seeds": 1},
        "summary": {"t": {"maml": {"3": {}}}},
        "training": {"t": {"maml": {"history": {"best_val_acc": 0.8}}}},
    }
    lines = cv_section(results, 5)("t", None)
    assert "3 labelled samples a class cannot fill 5 folds." in lines
    assert results["cv_choice"]["t"]["draws"] == []


def test_an_ensemble_needs_two_learners(cli, world, tmp_path):
    out = tmp_path / "e"
    res = cli("evaluate", "--catalog", world, "--out", out, "--ensemble", "1")
    assert res.exit_code == 2 and "--ensemble" in res.output and not out.exists()
