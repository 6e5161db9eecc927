"""Does cross-validation on the labelled fields pick the method that does best on the rest?

`cropmeta adapt --cv K` scores the meta-learner and every baseline from the support set alone:
in production the only estimate of which method suits a region. Here each target region gets
``--draws`` support sets of ``--shots`` fields per class (the draws `cropmeta adapt --shots`
makes with seeds ``--seed``, ``--seed`` + 1, ...); on each, the method with the best
cross-validated macro-F1 (the CV's pick) is compared with the method best on the region's other
labelled samples (the query set, which the pick never sees). Printed per target: every method's
query and CV figures and how often the CV picked it; then what following the CV's pick gives on
the query set against always taking the meta-learner or any one baseline.

Run (a model and region dataset per target, e.g. from a `cropmeta evaluate` output folder;
≈ 10 s a draw with 5 folds, 1 thread):
  .venv/bin/python benchmarks/cv_selection.py OUT/models/poltava/anil=OUT/regions/poltava.zarr \\
      OUT/models/nebraska/anil=OUT/regions/nebraska.zarr --shots 5 --draws 5 --folds 5
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import fmean as mean

from cropmeta.adapt.adapt import AdaptResult, adapt
from cropmeta.adapt.cross_validate import best_method as pick
from cropmeta.adapt.score import score
from cropmeta.models.forest import FOREST_TREES

METRICS = ("overall_accuracy", "macro_f1")


def draws(model: Path, region: Path, args: argparse.Namespace) -> list[AdaptResult]:
    return [
        score(
            adapt(model, region, args.shots, seed, cv_folds=args.folds, forest_trees=args.trees),
            transductive=False,  # the ranked methods only
        )
        for seed in range(args.seed, args.seed + args.draws)
    ]


def ranked(run: AdaptResult) -> dict[str, dict[str, float]]:
    """The cross-validated figures of the methods scored on the query (the corrected `+bbse`
    variants are cross-validated but not scored here: ``transductive=False``)."""
    return {m: v for m, v in run.cv_metrics.items() if m in run.metrics}


def target_table(runs: list[AdaptResult]) -> list[str]:
    """Markdown: each method's mean query OA / F1, mean CV F1, and how often the CV picked it."""
    picks = [pick(ranked(r)) for r in runs]
    lines = [
        "| method | query OA | query macro-F1 | CV macro-F1 | CV's pick |",
        "|---|---:|---:|---:|---:|",
    ]
    methods = sorted(runs[0].metrics, key=lambda m: -mean(r.metrics[m]["macro_f1"] for r in runs))
    for m in methods:
        oa, f1 = (mean(r.metrics[m][k] for r in runs) for k in METRICS)
        cv = mean(r.cv_metrics[m]["macro_f1"] for r in runs)
        name = f"**{m}**" if m == runs[0].learner else m
        lines.append(
            f"| {name} | {oa:.3f} | {f1:.3f} | {cv:.3f} | {picks.count(m)} of {len(runs)} |"
        )
    followed = [r.metrics[p] for r, p in zip(runs, picks, strict=True)]
    oa, f1 = (mean(f[k] for f in followed) for k in METRICS)
    agree = sum(p == pick(r.metrics) for r, p in zip(runs, picks, strict=True))
    lines.append(
        f"| following the CV's pick | {oa:.3f} | {f1:.3f} | | "
        f"the query's best {agree} of {len(runs)} |"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="MODEL_DIR=REGION_ZARR, one per target")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trees", type=int, default=FOREST_TREES, help="per random forest")
    args = parser.parse_args()
    every: list[AdaptResult] = []
    for pair in args.pairs:
        model, region = (Path(p) for p in pair.split("=", 1))
        runs = draws(model, region, args)
        every += runs
        print(
            f"\n### {runs[0].region} ({model}; K = {args.shots}, "
            f"{args.draws} draws, {args.folds} folds)\n"
        )
        print("\n".join(target_table(runs)))
    if len({r.learner for r in every}) > 1:
        raise SystemExit(
            "cv_selection.py: give models of one meta-learner (the summary compares it)"
        )
    picks = [pick(ranked(r)) for r in every]
    agree = sum(p == pick(r.metrics) for r, p in zip(every, picks, strict=True))
    followed = mean(r.metrics[p]["macro_f1"] for r, p in zip(every, picks, strict=True))
    always = {m: mean(r.metrics[m]["macro_f1"] for r in every) for m in every[0].metrics}
    best, learner = max(always, key=always.get), every[0].learner
    print(
        f"\nOver {len(every)} draws: the CV's pick was the query's best in {agree}; following it "
        f"gives query macro-F1 {followed:.3f}, always {learner} {always[learner]:.3f}, "
        f"always {best} (the best single method) {always[best]:.3f}."
    )


if __name__ == "__main__":
    main()
