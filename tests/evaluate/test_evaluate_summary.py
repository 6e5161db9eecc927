"""The evaluation report's opening summary across held-out regions (issue 18, part 4)."""

from __future__ import annotations

from cropmeta.evaluate.summary import across_targets, summary_lines


def _run(target, method, k, oa, f1, classes=("maize", "wheat"), skipped=()):
    return {
        "target": target, "method": method, "shots": k, "classes": list(classes),
        "skipped_classes": list(skipped),
        "metrics": {"overall_accuracy": oa, "macro_f1": f1, "kappa": 0.0},
    }  # fmt: skip


def _results():
    runs = []
    for t, shift in (("a", 0.0), ("b", 0.1)):
        for seed in range(3):
            e = 0.01 * seed
            runs += [
                _run(t, "best", 5, 0.70 + shift + e, 0.60 + shift + e),
                _run(t, "pooled_forest", 5, 0.72 + shift + e, 0.55 + shift + e),
                _run(t, "maml", 5, 0.50 + shift + e, 0.40 + shift + e, skipped=["rye"]),
            ]
    runs.append(_run("a", "only_a", 5, 0.9, 0.9))  # not scored on every target: left out
    runs.append({"target": "b", "shots": 20, "seed": 0, "method": "maml", "skipped": "few"})
    return {"runs": runs}


def test_means_are_over_the_targets_with_their_interval():
    table = across_targets(_results(), 5)
    assert set(table) == {"best", "pooled_forest", "maml"}
    entry = table["best"]["overall_accuracy"]
    assert entry["n"] == 2 and abs(entry["mean"] - 0.76) < 1e-9
    assert entry["low"] < entry["mean"] < entry["high"]


def test_the_summary_marks_the_automatic_choice_and_the_dropped_classes():
    text = "\n".join(summary_lines(_results()))
    assert "**best** (automatic choice: `cropmeta adapt`)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert rows[0].startswith("| **best**")  # best macro-F1 first
    assert "save the automatic choice" in text or "save it (`cropmeta adapt`)" in text
    assert "- a: maize, wheat; dropped: K = 5: rye" in text


def test_a_method_clearly_above_is_the_one_to_save():
    results = _results()  # one region: the intervals are over its draws
    results["runs"] = [r for r in results["runs"] if r["target"] == "a"]
    for r in results["runs"]:
        if r.get("method") == "pooled_forest":
            r["metrics"]["macro_f1"] += 0.3
            r["metrics"]["overall_accuracy"] += 0.2
    text = "\n".join(summary_lines(results))
    assert "**pooled_forest** is clearly above it" in text
    assert "`cropmeta adapt --method pooled_forest`" in text
