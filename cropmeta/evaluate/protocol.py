"""Cross-region few-shot evaluation: which learner, with how many labels, how sure.

The protocol follows the held-out-region setting of Rußwurm et al. (2020), "Meta-learning for
few-shot land cover classification" (CVPR EarthVision), and Tseng et al. (2021), "CropHarvest"
(NeurIPS Datasets and Benchmarks):

* **folds** — the catalog's split (its sources meta-train, each target is held out in turn),
  or leave-one-region-out over the chosen regions;
* per fold, every learner is meta-trained on the sources only: the normalisation statistics,
  the meta-validation tasks and early stopping all come from the sources, never the target;
* for every K in ``shots`` and every seed, one support/query draw of the target (K labelled
  samples per class, all its other labelled samples as query) is shared by every learner and
  every baseline (:func:`cropmeta.tasks.episodes.split_support_query`), so differences are
  between methods, not draws;
* every run is scored (overall accuracy, macro-F1, kappa, per-class F1, confusion matrix) and
  timed; the summary gives the mean and a 95 % confidence interval over seeds (Student t).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field, ValidationError, model_validator
from scipy import stats

from cropmeta.adapt.adapt import AdaptResult, adapt, chosen_method
from cropmeta.adapt.cross_validate import AUTOMATIC_FOLDS, best_method
from cropmeta.adapt.ensemble import ENSEMBLE, adapt_ensemble
from cropmeta.adapt.names import BEST
from cropmeta.adapt.score import score
from cropmeta.adapt.transductive import variant
from cropmeta.catalog import load_catalog
from cropmeta.errors import InputError
from cropmeta.evaluate.report import validation_ranking
from cropmeta.evaluate.workers import run_jobs
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.learners.config import LearnerConfig, learner_config
from cropmeta.learners.meta_train import MetaTrainConfig, meta_train
from cropmeta.models.bundle import load_config
from cropmeta.models.forest import FOREST_TREES

Progress = Callable[[str, int, int], None]
METRICS = ("overall_accuracy", "macro_f1", "kappa")

RANGE = {"overall_accuracy": (0.0, 1.0), "macro_f1": (0.0, 1.0), "kappa": (-1.0, 1.0)}


class EvaluationConfig(BaseModel):
    """What to compare, on which folds, how often."""

    learners: list[str] = Field(default_factory=lambda: ["maml", "protonet"])
    shots: list[int] = Field(default_factory=lambda: [1, 2, 5, 10, 20])
    seeds: int = Field(5, ge=1, description="support/query draws per K")
    meta: MetaTrainConfig = Field(
        default_factory=MetaTrainConfig,
        description="the meta-training settings every learner shares (task shape, optimisation, "
        "validation); its algorithm and learner settings are each learner's own",
    )
    learner_settings: dict[str, LearnerConfig] = Field(
        default_factory=dict,
        description="each learner's own settings, typed (missing: the learner's defaults)",
    )
    regions: list[str] | None = Field(None, description="catalog regions to use (default: all)")
    targets: list[str] | None = Field(None, description="held-out regions (default: the split)")
    loro: bool = Field(False, description="leave-one-region-out instead of the catalog split")
    baselines: bool = True
    forest_trees: int = Field(
        FOREST_TREES, ge=1, le=10_000, description="trees of every random forest baseline"
    )
    transductive: bool = Field(
        True,
        description="also score each method's corrections with the target's unlabelled samples "
        "(the query's series, never its labels): cropmeta.adapt.transductive",
    )
    ensemble: int | None = Field(
        None,
        ge=2,
        description="also score the ensemble of the learners with the best meta-validation "
        "accuracy, this many of them",
    )
    cv_folds: int | None = Field(
        None,
        ge=2,
        description="also measure `adapt --cv N --method best` on the headline K's draws",
    )
    automatic: bool = Field(
        True,
        description="score the automatic choice (`adapt --method best`, the default) on every "
        "draw: every method cross-validated on the support in min(5, K) folds, the first in "
        "macro-F1 (with the default correction) scored on the query (needs K ≥ 2)",
    )
    taxonomy: Path | None = Field(
        None, description="a user's taxonomy file merged over the catalog's (cropmeta.taxonomy)"
    )

    @model_validator(mode="after")
    def _every_learner_has_its_settings(self) -> EvaluationConfig:
        for name in self.learners:
            given = self.learner_settings.get(name)
            if given is None:
                self.learner_settings[name] = learner_config(name)
            elif given.name != name:
                raise ValueError(f"learner_settings[{name}] are {given.name}'s")
        return self

    def meta_config(self, learner: str, baselines: bool) -> MetaTrainConfig:
        """The meta-training configuration of ``learner``: the shared settings, its own."""
        return MetaTrainConfig.model_validate(
            self.meta.model_dump()
            | {"algorithm": learner, "learner": self.learner_settings[learner]}
            | {"baselines": baselines}
        )


@dataclass(frozen=True)
class Fold:
    target: str
    sources: tuple[str, ...]


def plan_folds(
    catalog_path: str | Path | None, cfg: EvaluationConfig, datasets: dict[str, Path] | None = None
) -> list[Fold]:
    """The folds: the catalog's sources against each target, or leave-one-region-out. With
    region ``datasets`` (name → path) instead of a catalog, the split is ``cfg.targets``
    against the others."""
    if datasets is None:
        cat = load_catalog(catalog_path)
        names = cfg.regions or [r.name for r in cat.regions]
        for name in names + (cfg.targets or []):
            cat.region(name)  # unknown names fail before any work starts
        split_sources = [r.name for r in cat.sources()]
        split_targets = [r.name for r in cat.targets()]
    else:
        names = list(datasets)
        if unknown := sorted(set(cfg.targets or []) - set(names)):
            raise InputError(unknown[0], f"not one of the region datasets ({', '.join(names)})")
        split_targets = cfg.targets or []
        split_sources = [n for n in names if n not in split_targets]
        catalog_path = next(iter(datasets.values()), "--region")
    if cfg.loro:
        targets = cfg.targets or names
        folds = [Fold(t, tuple(n for n in names if n != t)) for t in targets]
    else:
        sources = tuple(n for n in split_sources if n in names)
        targets = cfg.targets or [n for n in split_targets if n in names]
        folds = [Fold(t, tuple(s for s in sources if s != t)) for t in targets]
    if not folds or any(not f.sources for f in folds):
        raise InputError(catalog_path, "no fold has both a held-out region and source regions")
    val = set(cfg.meta.val_regions)
    for fold in folds:  # validation regions must be sources, with one left to train, everywhere
        if val - set(fold.sources) or set(fold.sources) <= val:
            raise InputError(
                catalog_path,
                f"validation regions {sorted(val)} must be sources of every fold, with one "
                f"left to train (target {fold.target}: sources {list(fold.sources)})",
            )
    return folds


def confidence(values: list[float], bounds: tuple[float, float] = (-1.0, 1.0)) -> dict:
    """Mean and 95 % confidence interval (Student t over the seeds; NaN bounds for one seed),
    clipped to the metric's range ``bounds``."""
    v = np.asarray(values, float)
    mean = float(v.mean())
    if len(v) < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "n": len(v)}
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    low, high = max(bounds[0], mean - half), min(bounds[1], mean + half)
    return {"mean": mean, "low": low, "high": high, "n": len(v)}


def summarise(runs: list[dict]) -> dict:
    """``summary[target][method][K][metric]`` = mean and CI over seeds, plus mean seconds."""
    out: dict = {}
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["target"], r["method"], r["shots"]), []).append(r)
    for (target, method, k), rs in sorted(groups.items()):
        entry = {m: confidence([r["metrics"][m] for r in rs], RANGE[m]) for m in METRICS}
        entry["seconds"] = float(np.mean([r["seconds"] for r in rs]))
        out.setdefault(target, {}).setdefault(method, {})[str(k)] = entry
    return out


def _regions(
    catalog: Path, names: set[str], out: Path, progress: Progress | None, taxonomy: Path | None
) -> dict:
    """Every region needed, preprocessed once into ``out`` (datasets there are reused), its
    labels read with the catalog's taxonomy and the user's ``taxonomy`` file merged over it."""
    paths = {}
    for done, name in enumerate(sorted(names), start=1):
        path = out / f"{name}.zarr"
        if not path.exists():
            preprocess_catalog_region(catalog, name, path, user_taxonomy=taxonomy)
        paths[name] = path
        if progress:
            progress("preprocess", done, len(names))
    return paths


def _recorded_config(history: dict) -> MetaTrainConfig | None:
    try:
        return MetaTrainConfig.model_validate(history.get("config"))
    except ValidationError:
        return None


def finished_model(
    path: Path, cfg: MetaTrainConfig, sources: tuple[str, ...], seed: int
) -> dict | None:
    """The training record of a model an earlier run of this evaluation left at ``path`` —
    meta-trained with the same settings, seed and sources — or None (train it).

    Bundles are written whole or not at all, so an interrupted evaluation resumes after its
    last finished model; its meta-training seconds are those of the first run. Settings are
    compared as configs, so a setting added to cropmeta since (at its default) still matches.
    """
    try:
        bundle = load_config(path)
    except InputError:  # absent or unreadable: train
        return None
    history = bundle.history
    same = (
        bundle.kind == "meta"
        and bundle.seed == seed
        and _recorded_config(history) == cfg
        and history.get("regions") == list(sources)
        and (not cfg.baselines or "transfer" in history)
    )
    return {"seconds": history.get("seconds"), "history": history, "reused": True} if same else None


def run_evaluation(
    catalog: str | Path | None,
    out: str | Path,
    cfg: EvaluationConfig | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    workers: int = 1,
    datasets: dict[str, Path] | None = None,
) -> dict:
    """Run the protocol; returns the raw runs, the summary and each model's training history.
    The regions are the catalog's, preprocessed here, or the region ``datasets`` (name → path)
    a user prepared (then ``catalog`` is None).

    ``out`` receives ``regions/`` (datasets, reused by a later run), ``models/<target>/
    <learner>/`` (the meta-trained models, reused by a later run with the same settings:
    :func:`finished_model`) and nothing else; reports are written by
    :func:`cropmeta.evaluate.report.write_report`. The meta-trainings, then the draws, run over
    ``workers`` processes of one thread each (:mod:`cropmeta.evaluate.workers`): the same
    figures as one worker at one thread.
    """
    cfg = cfg or EvaluationConfig()
    out = Path(out)
    folds = plan_folds(catalog, cfg, datasets)
    needed = {f.target for f in folds} | {s for f in folds for s in f.sources}
    if datasets is None:
        paths = _regions(Path(catalog), needed, out / "regions", progress, cfg.taxonomy)
    else:  # prepared already: used where they are
        paths = {name: Path(datasets[name]) for name in sorted(needed)}
    models, training = _meta_train_all(folds, cfg, paths, out, seed, workers, progress)
    ensembles = {
        fold.target: members
        for fold in folds
        if (members := ensemble_members(training[fold.target], cfg))
    }
    draws = [
        (fold, k, seed + s, models[fold.target], paths[fold.target], cfg,
         ensembles.get(fold.target, []))
        for fold in folds
        for k in cfg.shots
        for s in range(cfg.seeds)
    ]  # fmt: skip
    report = None if progress is None else lambda done, total: progress("adapt", done, total)
    runs = [r for draw in run_jobs(score_draw, draws, workers, report) for r in draw]
    scored = [r for r in runs if "metrics" in r]
    threads = 1 if workers > 1 else torch.get_num_threads()
    return {
        "ensembles": ensembles,  # target → the ensemble's members, best-validated first
        "config": cfg.model_dump(mode="json"),
        "seed": seed,
        "folds": [{"target": f.target, "sources": list(f.sources)} for f in folds],
        "regions": {name: str(p) for name, p in paths.items()},
        "models": models,
        "training": training,
        "runs": runs,
        "summary": summarise(scored),
        # training's float sums, hence every figure, are reproducible at the same thread count
        "environment": {"torch": torch.__version__, "threads": threads, "workers": workers},
    }


def _meta_train_all(
    folds: list[Fold],
    cfg: EvaluationConfig,
    paths: dict[str, Path],
    out: Path,
    seed: int,
    workers: int,
    progress: Progress | None,
) -> tuple[dict, dict]:
    """Every learner meta-trained on every fold's sources — once per set of sources, reusing a
    model an earlier run left (:func:`finished_model`) — as ``models[target][learner]`` (its
    folder) and ``training[target][learner]`` (its record)."""
    owner: dict[tuple[tuple[str, ...], str], str] = {}  # (sources, learner) → its model's fold
    records: dict[tuple[str, str], dict] = {}
    jobs, keys = [], []
    for fold in folds:
        for i, learner in enumerate(cfg.learners):
            if (fold.sources, learner) in owner:  # the same sources as an earlier fold
                continue
            owner[fold.sources, learner] = fold.target
            meta_cfg = cfg.meta_config(learner, baselines=cfg.baselines and i == 0)
            model = out / "models" / fold.target / learner
            record = finished_model(model, meta_cfg, fold.sources, seed)
            if record is None:
                jobs.append(([paths[s] for s in fold.sources], model, meta_cfg, seed))
                keys.append((fold.target, learner))
            else:
                records[fold.target, learner] = record
    report = None if progress is None else lambda done, total: progress("meta-train", done, total)
    records |= dict(zip(keys, run_jobs(meta_train_job, jobs, workers, report), strict=True))
    models: dict = {}
    training: dict = {}
    for fold in folds:
        for learner in cfg.learners:
            first = owner[fold.sources, learner]
            models.setdefault(fold.target, {})[learner] = str(out / "models" / first / learner)
            training.setdefault(fold.target, {})[learner] = records[first, learner]
    return models, training


def meta_train_job(sources: list[Path], model: Path, cfg: MetaTrainConfig, seed: int) -> dict:
    """Meta-train one learner for one fold; its training record (seconds, history)."""
    start = time.perf_counter()
    meta_train(sources, model, cfg, seed=seed)
    return {"seconds": round(time.perf_counter() - start, 2), "history": load_config(model).history}


def score_draw(
    fold: Fold,
    k: int,
    seed: int,
    models: dict[str, str],
    region: Path,
    cfg: EvaluationConfig,
    members: list[str],
) -> list[dict]:
    """One support/query draw (K, seed) of a fold's target: every learner and baseline adapted
    in memory and scored on the same query, then the automatic choice and the ensemble."""
    runs: list[dict] = []
    draw: list[AdaptResult] = []
    cv = min(AUTOMATIC_FOLDS, k) if cfg.automatic and k >= 2 else None
    for i, learner in enumerate(cfg.learners):
        try:
            res = adapt(  # in memory: scored, never saved
                models[learner],
                region,
                shots=k,
                seed=seed,
                baselines=cfg.baselines and i == 0,
                cv_folds=cv,
                forest_trees=cfg.forest_trees,
                class_prior=draw[0].class_prior if draw else None,  # one estimate per draw
            )
            score(res, transductive=cfg.transductive)
        except InputError as exc:  # too few labelled samples for this K
            runs.append({"target": fold.target, "shots": k, "seed": seed,
                         "method": learner, "skipped": exc.problem})  # fmt: skip
            continue
        runs += _records(res, fold, k, seed, keep=res.metrics)
        draw.append(res)
    if cv and draw:
        runs.append(_automatic_record(draw, fold, k, seed))
    if members:  # the ensemble of the best-validated learners, on the same draw
        try:
            res = adapt_ensemble(
                [models[m] for m in members], region, shots=k, seed=seed, baselines=False
            )
            runs += _records(res, fold, k, seed, keep=[ENSEMBLE])
        except InputError:  # the draw its members could not make either
            pass
    return runs


def ensemble_members(training: dict, cfg: EvaluationConfig) -> list[str]:
    """The ``cfg.ensemble`` learners with the best meta-validation accuracy (none when fewer
    than two have validation scores, or no ensemble is asked for)."""
    if not cfg.ensemble:
        return []
    members = [m for m, _ in validation_ranking(training, cfg.learners)][: cfg.ensemble]
    return members if len(members) >= 2 else []


def _automatic_record(draw: list[AdaptResult], fold: Fold, k: int, seed: int) -> dict:
    """The automatic choice on one draw, as ``adapt --method best`` makes it: every learner's
    and baseline's support cross-validation pooled, the choice (with the default correction
    where it was scored) taken, and its query figures recorded as method ``best``, with
    cross-validation's leader and its macro-F1 (± standard error) beside it."""
    cv_metrics: dict = {}
    owner: dict[str, AdaptResult] = {}
    for res in draw:
        cv_metrics |= res.cv_metrics
        owner |= dict.fromkeys(res.metrics, res)
    cv_metrics = {m: v for m, v in cv_metrics.items() if m in owner}  # those scored on the query
    chosen = chosen_method(cv_metrics, BEST, lambda how, m: variant(m, how) in owner)
    record = _records(owner[chosen], fold, k, seed, keep=[chosen])[0]
    leader = best_method(cv_metrics)  # the pick before the default correction is added
    return record | {
        "method": BEST,
        "learner": False,
        "notes": f"picked {chosen}",
        "cv_leader": leader,
        "cv_leader_macro_f1": cv_metrics[leader]["macro_f1"],
        "cv_leader_macro_f1_se": cv_metrics[leader].get("macro_f1_se"),
        "class_prior": draw[0].class_prior,
        "cv": cv_metrics,  # every method's support figures, to re-take other rules from
    }


def _records(res: AdaptResult, fold: Fold, k: int, seed: int, keep) -> list[dict]:
    """The runs of one adaptation: a record per method of ``keep`` (all, or the ensemble's)."""
    return [
        {
            "target": fold.target,
            "sources": list(fold.sources),
            "shots": k,
            "seed": seed,
            "method": method,
            "learner": method == res.learner,
            "metrics": res.metrics[method],
            "details": res.details[method],
            "seconds": res.seconds.get(method, math.nan),
            "classes": res.classes,
            "skipped_classes": res.skipped_classes,
            "n_support": res.n_support,
            "n_query": res.n_query,
            "notes": res.notes.get(method, ""),
        }
        for method in keep
    ]
