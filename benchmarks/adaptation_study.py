"""Issue 18's real-data comparison, read from `cropmeta evaluate` results (pre-registered in
docs/studies/adaptation-and-automatic-choice.md, "Transductive corrections, Presto and the
automatic choice on real data").

For each evaluation folder (one per data set, made by `pipelines/evaluate-NAME.sh`): every
method's overall accuracy and macro-F1, means over the draws then over the data set's targets,
at each K; each transductive correction's mean change over the methods it was applied to; the
pre-registered decision rule for the correction `--method best` adds by default; and the
automatic choice with that default, recomputed from the same draws (the pick's corrected row
on the same draw, as `cropmeta.evaluate.protocol._automatic_record` takes it); and, for runs
that record cross-validation's leader, the plain first-in-macro-F1 rule on the same draws
(docs/studies/adaptation-and-automatic-choice.md, "The automatic choice, steadier").

Run: python benchmarks/adaptation_study.py /tmp/i18/gee-tsda /tmp/i18/mato-grosso /tmp/i18/tiselac
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import fmean, median

from cropmeta.baselines.names import BASELINES

HOWS = ("label_shift", "bbse", "self_training", "timematch", "soft_kmeans")
METRICS = ("overall_accuracy", "macro_f1")
#: The correction the plain rule added wherever it applied (the second increment's default).
PLAIN_RULE_CORRECTION = "self_training"


def target_means(runs: list[dict], k: int) -> dict[str, dict[str, tuple[float, float]]]:
    """method → target → (OA, macro-F1) means over the draws at K."""
    by: dict = {}
    for r in runs:
        if "metrics" in r and r["shots"] == k:
            by.setdefault(r["method"], {}).setdefault(r["target"], []).append(r["metrics"])
    return {
        m: {t: tuple(fmean(x[metric] for x in xs) for metric in METRICS) for t, xs in ts.items()}
        for m, ts in by.items()
    }


def picked(run: dict) -> str:
    """The method the automatic choice took on a ``best`` run's draw."""
    return run["notes"].removeprefix("picked ")


def retaken(runs: list[dict], how: str | None, label: str, pick=picked) -> list[dict]:
    """The ``best`` runs re-taken as another choice on the same draw: method ``pick(run)``
    (None: left out), with correction ``how`` where that row was scored, recorded as
    ``label``."""
    index = {(r["target"], r["shots"], r["seed"], r["method"]): r for r in runs if "metrics" in r}
    out = []
    for r in runs:
        if r.get("method") != "best" or (method := pick(r)) is None:
            continue
        key = (r["target"], r["shots"], r["seed"])
        base = index.get((*key, method), r)
        twin = index.get((*key, f"{method}+{how}"), base) if how else base
        out.append({**r, "method": label, "metrics": twin["metrics"]})
    return out


def with_default(runs: list[dict], how: str | None) -> list[dict]:
    """The ``best`` runs re-taken with correction ``how`` where the pick's corrected row was
    scored on the same draw (the automatic choice had ``how`` been the default)."""
    return retaken(runs, how, f"best+{how}") if how else []


def macro_f1_leader(run: dict) -> str | None:
    """The plain rule's pick on a ``best`` run's draw: the method (no correction) first in
    cross-validated macro-F1 on the balanced folds — from the recorded figures where the run
    kept them (fourth increment on), else the recorded leader."""
    if "cv" not in run:
        return run.get("cv_leader")
    plain = {m: v for m, v in run["cv"].items() if "+" not in m}
    return max(plain, key=lambda m: plain[m]["macro_f1"])


def leader_rule(runs: list[dict], how: str | None) -> list[dict]:
    """The ``best`` runs re-taken with the plain rule (what ``best`` did from the second to
    the fourth increment): cross-validation's macro-F1 leader, with correction ``how`` wherever
    it was scored (runs that recorded their leader or their figures only)."""
    label = "cv leader" + (f"+{how}" if how else "") + " (first-in-macro-F1 rule)"
    return retaken(runs, how, label, pick=macro_f1_leader)


def prior_errors(runs: list[dict]) -> dict[int, list[float]]:
    """K → per ``best`` draw, the mean absolute error of the region's class priors estimated
    in cross-validation (``class_prior``) against the query's true class shares."""
    out: dict[int, list[float]] = {}
    for r in runs:
        if r.get("method") != "best" or not r.get("class_prior"):
            continue
        counts = [sum(row) for row in r["details"]["confusion"]]
        truth = [c / sum(counts) for c in counts]
        error = fmean(abs(a - b) for a, b in zip(r["class_prior"], truth, strict=True))
        out.setdefault(r["shots"], []).append(error)
    return out


def beyond_baselines(runs: list[dict]) -> dict[tuple[str, int], list[str]]:
    """(target, K) → the meta-learned or transductive methods (learners, and any method with a
    correction) above every baseline in both OA and macro-F1 (the issue's second target)."""
    out = {}
    for k in sorted({r["shots"] for r in runs if "metrics" in r}):
        per = target_means(runs, k)
        for target in sorted({t for ts in per.values() for t in ts}):
            scores = {m: ts[target] for m, ts in per.items() if target in ts and m != "best"}
            plain = [m for m in scores if m in BASELINES]
            top = [max(scores[m][i] for m in plain) for i in range(2)]
            out[target, k] = [
                m for m in scores
                if m not in plain and all(scores[m][i] > top[i] for i in range(2))
            ]  # fmt: skip
    return out


def data_set_table(runs: list[dict], k: int) -> dict[str, tuple[float, float]]:
    """method → (OA, macro-F1): means over the targets (methods scored on every target)."""
    per = target_means(runs, k)
    targets = {t for ts in per.values() for t in ts}
    return {
        m: tuple(fmean(ts[t][i] for t in targets) for i in range(2))
        for m, ts in per.items()
        if set(ts) == targets
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args()
    data = {f.name: json.loads((f / "results.json").read_text())["runs"] for f in args.folders}
    gains: dict[str, list[tuple[float, float]]] = {h: [] for h in HOWS}
    tables = {}
    for name, runs in data.items():
        for k in sorted({r["shots"] for r in runs if "metrics" in r}):
            table = data_set_table(runs, k)
            tables[name, k] = table
            for how in HOWS:
                pairs = [(table[m], table[m.split("+")[0]]) for m in table if m.endswith(f"+{how}")]
                if pairs:
                    gains[how].append(tuple(fmean(v[i] - b[i] for v, b in pairs) for i in range(2)))
    print("## Mean change each correction makes to the methods it applies to")
    print("| correction | ΔOA | Δmacro-F1 | (data set, K) pairs |\n|---|---:|---:|---:|")
    eligible = {}
    for how, g in gains.items():
        if not g:
            continue
        d_oa, d_f1 = fmean(x for x, _ in g), fmean(y for _, y in g)
        print(f"| {how} | {d_oa:+.3f} | {d_f1:+.3f} | {len(g)} |")
        if d_oa > 0 and d_f1 >= -0.01:
            eligible[how] = d_oa
    default = max(eligible, key=eligible.get) if eligible else None
    print(f"\nDecision rule: default correction = {default}\n")
    pairs = {key: won for runs in data.values() for key, won in beyond_baselines(runs).items()}
    print(f"Meta-learned or transductive methods above every baseline in both metrics on "
          f"{sum(bool(w) for w in pairs.values())} of {len(pairs)} (target, K) pairs:")  # fmt: skip
    for (target, k), won in pairs.items():
        print(f"  {target} K={k}: {', '.join(sorted(won)) or '-'}")
    for name, runs in data.items():
        for k, errors in sorted(prior_errors(runs).items()):
            spread = f"median {median(errors):.3f}, max {max(errors):.3f}"
            print(f"{name}, K = {k}: BBSE class-prior error (mean |error| per class), {spread}")
    for name, runs in data.items():
        runs = runs + with_default(runs, default) + leader_rule(runs, PLAIN_RULE_CORRECTION)
        for k in sorted({r["shots"] for r in runs if "metrics" in r}):
            table = data_set_table(runs, k)
            print(f"## {name}, K = {k} (OA / macro-F1, best macro-F1 first)")
            for m in sorted(table, key=lambda m: -table[m][1]):
                print(f"  {m:32s} {table[m][0]:.3f} / {table[m][1]:.3f}")


if __name__ == "__main__":
    main()
