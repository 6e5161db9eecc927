"""Diagnostics the meta-learning literature warns about, as pure functions and plain sentences.

Four questions a reader of an evaluation should be able to answer before trusting (or
dismissing) a meta-learner's figures:

1. **Task variability** (:func:`class_conditional_distances`, :func:`task_variability_summary`).
   Meta-learning assumes the target task is drawn from the same distribution of tasks as the
   meta-training tasks; a target that lies farther from the sources than the sources lie from
   each other is outside what meta-training saw, and meta-learned knowledge transfers less well
   (Rußwurm et al., 2020, "Meta-learning for few-shot land cover classification", CVPR-W; Tseng
   et al., 2022, "TIML"; for the general point, Triantafillou et al., 2020, "Meta-Dataset",
   ICLR). The distance between two regions is measured per shared class, between their
   class-conditional distributions, so that differing class frequencies do not count as shift.
2. **Adaptation gain** (:func:`adaptation_gain`): what the few labelled target fields added over
   a model that did not adapt (the ``source_only`` baseline, or chance level).
3. **Meta-overfitting** (:func:`meta_fit_gap`): the gap between accuracy on meta-training tasks
   and on held-out meta-validation tasks at the end of training (Yin et al., 2020,
   "Meta-learning without memorization", ICLR; Rajendran et al., 2020, "Meta-learning requires
   meta-augmentation", NeurIPS).
4. **Meta-underfitting / no gain over simple baselines** (:func:`meta_underfitting`): a
   meta-learner that does not beat a well-tuned transfer or shots-only baseline has not earned
   its complexity (Chen et al., 2019, "A closer look at few-shot classification", ICLR; Tian
   et al., 2020, "Rethinking few-shot image classification", ECCV).

Every ``*_sentence`` function turns a result into plain-language sentences for the
``cropmeta evaluate`` report; the thresholds they use are module constants, documented where
they are defined.

Distance used for task variability
----------------------------------
The **unbiased squared maximum mean discrepancy** (MMD²ᵤ, Gretton et al., 2012, "A kernel
two-sample test", JMLR 13, eq. 3) with a Gaussian (RBF) kernel whose bandwidth is set by the
**median heuristic** (ibid., section 8; Garreau, Jitkrittum & Kanagawa, 2017, "Large sample
analysis of the median heuristic", arXiv:1707.07269), computed on the normalised series
flattened over (step, band). Why this one:

* it needs no covariance estimate: a Fréchet/Gaussian fit needs a 250 × 250 covariance from as
  few as 5 samples (singular without heavy shrinkage, and then dominated by the shrinkage);
* the unbiased estimator has expectation exactly 0 when both samples come from the same
  distribution, whatever the sample sizes, so a class with 5 fields is not made to look
  farther than a class with 500 (the biased estimator and the energy distance's plug-in
  estimate carry an O(1/n) positive bias). Its values can therefore be slightly negative:
  that reads "indistinguishable from sampling noise";
* with a bounded kernel it lies in [-1, 2] and, with the median heuristic, is roughly
  scale-free, so figures of different classes can be averaged.

The bandwidth of a class is the median pairwise distance in the pooled (subsampled) samples of
that class over all mutually comparable regions, so every pair and the within-region
reference of a class use the same kernel and their figures are comparable. (Adding a region
therefore changes every figure slightly; compare figures within one result only.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypedDict

import numpy as np

from cropmeta.evaluate.task_variability import (  # noqa: F401 (part of this module's API)
    MAX_PER_CLASS,
    MIN_PER_CLASS,
    TaskDistances,
    class_conditional_distances,
    median_bandwidth,
    mmd2_unbiased,
    task_variability_summary,
)

#: A change in a metric smaller than this (absolute, on 0–1 scores) is "no change".
TIE = 0.005
#: Meta-overfitting is flagged when training-task accuracy exceeds meta-validation accuracy by
#: more than this at the end of training. Query accuracy of one meta-batch is noisy (a few
#: tasks of a few queries per class); ten points is well above that noise for the default
#: validation size.
OVERFIT_GAP = 0.10
#: Validation points averaged at the end of training (the training accuracies of the same
#: iterations are averaged with them).
LAST_VALIDATIONS = 3
#: Training accuracies averaged when there is no validation to align them with.
LAST_TRAINING = 20

METRICS = ("overall_accuracy", "macro_f1", "kappa")
METRIC_NAMES = {"overall_accuracy": "overall accuracy", "macro_f1": "macro-F1", "kappa": "kappa"}

# --------------------------------------------------------------------------------------------
# Score helpers: plain floats or (mean, lo, hi) intervals
# --------------------------------------------------------------------------------------------

#: A score: a float; a confidence interval as a (mean, lo, hi) sequence (a JSON list works);
#: or the evaluation summary's entry, a mapping with "mean" and optional "low"/"high"
#: (:func:`cropmeta.evaluate.protocol.confidence`). NaN or missing bounds (one seed) mean
#: "no interval".
Score = float | Sequence[float] | Mapping[str, float]


def _interval(v: Score) -> tuple[float, float, float]:
    """(mean, lo, hi) of a score; a plain float, or NaN bounds, give a degenerate interval."""
    if isinstance(v, (int, float, np.floating, np.integer)):
        return float(v), float(v), float(v)
    if isinstance(v, Mapping):
        mean = float(v["mean"])
        t = (mean, float(v.get("low", math.nan)), float(v.get("high", math.nan)))
    else:
        t = tuple(float(x) for x in v)
        if len(t) != 3:
            raise ValueError(f"a score interval is (mean, lo, hi), got {v!r}")
    if not (math.isfinite(t[1]) and math.isfinite(t[2])):
        return t[0], t[0], t[0]
    if not t[1] <= t[0] <= t[2]:
        raise ValueError(f"a score interval needs lo ≤ mean ≤ hi, got {v!r}")
    return t  # type: ignore[return-value]


def _fmt(v: float, signed: bool = False) -> str:
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def chance_level(n_classes: int) -> dict[str, float]:
    """Scores of guessing uniformly at random among ``n_classes``: the no-adaptation reference
    when there is no ``source_only`` baseline. Overall accuracy 1/n; macro-F1 1/n (exact for
    balanced classes); kappa 0 (by definition of Cohen's kappa)."""
    if n_classes < 1:
        raise ValueError("n_classes must be at least 1")
    return {"overall_accuracy": 1.0 / n_classes, "macro_f1": 1.0 / n_classes, "kappa": 0.0}


# --------------------------------------------------------------------------------------------
# 2. Adaptation gain
# --------------------------------------------------------------------------------------------


def adaptation_gain(after: Mapping[str, Score], before: Mapping[str, Score]) -> dict[str, float]:
    """Per metric present in both: the score after adaptation minus the no-adaptation
    reference (the ``source_only`` baseline's scores, or :func:`chance_level`). Intervals
    ``(mean, lo, hi)`` are reduced to their means."""
    return {
        k: _interval(after[k])[0] - _interval(before[k])[0]
        for k in METRICS
        if k in after and k in before
    }


def adaptation_gain_sentence(
    after: Mapping[str, Score], before: Mapping[str, Score], reference: str = "source_only"
) -> str:
    """One sentence on what adaptation added over ``reference`` (e.g. "source_only" or
    "chance level"), macro-F1 and overall accuracy; changes under :data:`TIE` are "no
    change"."""
    gain = adaptation_gain(after, before)
    parts = []
    for k in ("macro_f1", "overall_accuracy"):
        if k not in gain:
            continue
        a, b, g = _interval(after[k])[0], _interval(before[k])[0], gain[k]
        verb = "raised" if g > TIE else "lowered" if g < -TIE else "left unchanged"
        parts.append(f"{verb} {METRIC_NAMES[k]} from {_fmt(b)} to {_fmt(a)} ({_fmt(g, True)})")
    if not parts:
        return f"The adaptation gain over {reference} cannot be computed (no common metric)."
    head = f"Compared with {reference} (no adaptation), adapting to the support set "
    text = head + " and ".join(parts) + "."
    if all(v < -TIE for k, v in gain.items() if k in ("macro_f1", "overall_accuracy")):
        text += " Adaptation hurt: the few target fields pulled the model away from a better start."
    elif all(abs(v) <= TIE for k, v in gain.items() if k in ("macro_f1", "overall_accuracy")):
        text += " The few target fields added nothing measurable."
    return text


# --------------------------------------------------------------------------------------------
# 3. Meta-overfitting: training-task vs meta-validation accuracy
# --------------------------------------------------------------------------------------------


class FitGap(TypedDict):
    """Result of :func:`meta_fit_gap`; accuracies and gap are None when not measurable."""

    measurable: bool
    train_acc: float | None
    val_acc: float | None
    gap: float | None
    overfitting: bool | None
    n_train: int
    n_val: int
    threshold: float


def meta_fit_gap(
    history: Mapping, last: int = LAST_VALIDATIONS, threshold: float = OVERFIT_GAP
) -> FitGap:
    """Meta-overfitting at the end of training: mean training-task query accuracy minus mean
    meta-validation accuracy, over the last ``last`` validations.

    ``history`` is a bundle's ``config.json`` ``history``: ``iteration``/``acc`` (every
    logged iteration) and ``val_iteration``/``val_acc`` (each validation). The training
    accuracies averaged are those of the iterations since the validation preceding the
    window, so both means cover the same stretch of training (one meta-batch's accuracy is
    noisy). Without validation the gap is not measurable (``measurable`` False, the training
    accuracy still reported over the last :data:`LAST_TRAINING` iterations).
    """
    acc = [float(v) for v in (history.get("acc") or [])]
    its = [int(v) for v in (history.get("iteration") or [])] or list(range(1, len(acc) + 1))
    val = [float(v) for v in (history.get("val_acc") or [])]
    val_its = [int(v) for v in (history.get("val_iteration") or [])]
    last = max(1, int(last))
    if val:
        window = val[-last:]
        if len(val_its) == len(val) and len(its) == len(acc):
            start = val_its[-last - 1] if len(val_its) > last else -math.inf
            end = val_its[-1]
            train = [a for a, i in zip(acc, its, strict=True) if start < i <= end]
        else:
            train = acc[-LAST_TRAINING:]
        train = train or acc[-LAST_TRAINING:]
    else:
        window, train = [], acc[-LAST_TRAINING:]
    t = float(np.mean(train)) if train else None
    v = float(np.mean(window)) if window else None
    gap = None if t is None or v is None else t - v
    return FitGap(
        measurable=gap is not None,
        train_acc=t,
        val_acc=v,
        gap=gap,
        overfitting=None if gap is None else gap > threshold,
        n_train=len(train),
        n_val=len(window),
        threshold=threshold,
    )


def meta_fit_gap_sentence(gap: FitGap) -> str:
    """Plain sentences for :func:`meta_fit_gap`'s result."""
    if not gap["measurable"]:
        trained = (
            f" (training-task accuracy at the end: {_fmt(gap['train_acc'])})"
            if gap["train_acc"] is not None
            else ""
        )
        return (
            "Meta-overfitting is not measurable: no meta-validation tasks could be built from "
            f"held-out source fields{trained}."
        )
    t, v, g = gap["train_acc"], gap["val_acc"], gap["gap"]
    head = (
        f"At the end of meta-training, accuracy on training tasks was {_fmt(t)} and on held-out "
        f"validation tasks {_fmt(v)} (gap {_fmt(g, True)}, last {gap['n_val']} validations). "
    )
    if gap["overfitting"]:
        return head + (
            f"The gap exceeds {gap['threshold']:.2f}: the meta-learner overfits its training "
            "tasks (meta-overfitting); more source regions or tasks, task augmentation or "
            "earlier stopping should help."
        )
    return head + f"The gap is within {gap['threshold']:.2f}: no sign of meta-overfitting."


# --------------------------------------------------------------------------------------------
# 4. Meta-underfitting: no gain over the best baseline
# --------------------------------------------------------------------------------------------


class Comparison(TypedDict):
    """One learner against the best baseline on one metric (means; CIs where given)."""

    best_baseline: str
    baseline: float
    baseline_ci: tuple[float, float] | None
    learner: float
    learner_ci: tuple[float, float] | None
    margin: float
    #: "above" / "below": the intervals (degenerate for plain floats) do not overlap;
    #: "within_ci": they overlap (only possible with an interval); "tied": equal point scores.
    verdict: str
    #: no gain in mean over the best baseline (margin ≤ 0)
    underfitting: bool


def _compare(learner: Score, baselines: Mapping[str, Score]) -> Comparison:
    best = max(baselines, key=lambda b: _interval(baselines[b])[0])
    bm, blo, bhi = _interval(baselines[best])
    lm, llo, lhi = _interval(learner)
    if llo > bhi:
        verdict = "above"
    elif lhi < blo:
        verdict = "below"
    elif (llo, lhi) == (lm, lm) and (blo, bhi) == (bm, bm):
        verdict = "tied"
    else:
        verdict = "within_ci"
    return Comparison(
        best_baseline=best,
        baseline=bm,
        baseline_ci=None if blo == bhi == bm else (blo, bhi),
        learner=lm,
        learner_ci=None if llo == lhi == lm else (llo, lhi),
        margin=lm - bm,
        verdict=verdict,
        underfitting=lm - bm <= 0,
    )


def meta_underfitting(
    learner_scores: Mapping[str, Mapping[str, Score]],
    baseline_scores: Mapping[str, Mapping[str, Score]],
    metrics: Sequence[str] = ("macro_f1", "overall_accuracy"),
) -> dict[str, dict[str, Comparison]]:
    """For every learner (name → metrics) and metric: the best baseline by mean, the margin
    (learner minus best baseline) and whether the learner shows no gain (``underfitting``).

    A score is a float or a confidence interval ``(mean, lo, hi)`` (e.g. a bootstrap or
    across-seed 95 % interval); with intervals, "within_ci" means the two intervals overlap,
    "below"/"above" that they do not. Baselines lacking a metric are skipped for it.
    """
    out: dict[str, dict[str, Comparison]] = {}
    for name, scores in learner_scores.items():
        out[name] = {}
        for k in metrics:
            if k not in scores:
                continue
            bases = {b: s[k] for b, s in baseline_scores.items() if k in s and b != name}
            if bases:
                out[name][k] = _compare(scores[k], bases)
    return out


def meta_underfitting_sentence(result: Mapping[str, Mapping[str, Comparison]]) -> str:
    """Plain sentences for :func:`meta_underfitting`'s result, one per learner."""
    out = []
    for name, per_metric in result.items():
        if not per_metric:
            out.append(f"{name} cannot be compared with a baseline (no common metric).")
            continue
        parts = []
        for k, c in per_metric.items():
            m = METRIC_NAMES.get(k, k)
            fig = (
                f"{name} {_fmt(c['learner'])} vs {c['best_baseline']} {_fmt(c['baseline'])}, "
                f"{_fmt(c['margin'], True)}"
            )
            has_ci = c["learner_ci"] is not None or c["baseline_ci"] is not None
            if c["verdict"] == "above":
                how = "clearly above" if has_ci else "above (one draw, no interval)"
            elif c["verdict"] == "below":
                how = "clearly below" if has_ci else "below (one draw, no interval)"
            elif c["verdict"] == "tied":
                how = "level with"
            else:
                side = "above" if c["margin"] > 0 else "below" if c["margin"] < 0 else "level"
                how = f"{side} but within the confidence interval of"
            parts.append(f"{how} the best baseline on {m} ({fig})")
        flagged = [k for k, c in per_metric.items() if c["underfitting"]]
        sentence = f"{name} is {'; and '.join(parts)}."
        if flagged:
            clear = any(per_metric[k]["verdict"] == "below" for k in flagged)
            sentence += (
                f" {name} shows no gain over the best baseline on "
                f"{' and '.join(METRIC_NAMES.get(k, k) for k in flagged)}"
                + (
                    ": meta-underfitting, the meta-learned initialisation does not beat "
                    "simpler ways of using the same data."
                    if clear
                    else "; the difference is within noise, so the meta-learner has not "
                    "shown an advantage."
                )
            )
        elif all(c["verdict"] == "above" for c in per_metric.values()):
            sentence += f" {name} improves on every baseline."
        else:
            sentence += (
                f" {name} is ahead of the best baseline in mean, but not beyond the "
                "confidence intervals on every metric: no clear advantage yet."
            )
        out.append(sentence)
    return " ".join(out)
