"""Adapt a meta-trained model to a new region from a handful of labelled fields: ``adapt``
(in memory, choosing from the labelled fields alone) → ``score`` (the query's figures,
:mod:`cropmeta.adapt.score`) → ``save`` (:mod:`cropmeta.adapt.result`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cropmeta.adapt.cross_validate import (
    AUTOMATIC_FOLDS,
    PriorShift,
    best_method,
    check_folds,
    cross_validate,
)
from cropmeta.adapt.label_shift import BBSE_SAMPLES
from cropmeta.adapt.names import BEST, DEFAULT_TRANSDUCTION, TRANSDUCTIONS
from cropmeta.adapt.predict import predict_methods
from cropmeta.adapt.result import AdaptResult, Fitting, save
from cropmeta.adapt.score import score
from cropmeta.adapt.transductive import (
    Unlabelled,
    applies,
    split_variant,
    transduce,
    variant,
)
from cropmeta.baselines.names import BASELINES, PRESTO_METHODS
from cropmeta.baselines.pooled import load_pool
from cropmeta.baselines.presto import region_latlon
from cropmeta.baselines.run import (
    Shots,
    Sources,
    available,
    baseline_model,
    training_prior,
    unreadable_by_presto,
    weighted_fit,
)
from cropmeta.baselines.transfer import source_only
from cropmeta.errors import InputError
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.ingest.prepare import incompatibility
from cropmeta.learners.pretrain import load_pretrained
from cropmeta.learners.registry import build_learner, check_adaptation, recorded_learner
from cropmeta.models.bundle import (
    CONFIG,
    Bundle,
    BundleConfig,
    ClassInfo,
    build_model,
    read_bundle,
)
from cropmeta.models.forest import FOREST_TREES
from cropmeta.ownership import claim
from cropmeta.tasks.augment import RegionEffects, TaskAugmentation
from cropmeta.tasks.episodes import split_support_query
from cropmeta.tasks.task_info import region_info

__all__ = ["AdaptResult", "MetaModel", "adapt", "adapt_region", "open_meta_model", "save"]

#: The largest crop-calendar shift alignment tries, either way (``+timematch``): weeks to two
#: months between regions of one hemisphere (shared/design/crop-phenology.md).
MAX_SHIFT_DAYS = 60


@dataclass(frozen=True)
class MetaModel:
    """A meta-trained model folder, read and checked once (config, weights, learner): the CLI
    opens it to check the options against its learner, then adapts it without reading it
    again."""

    bundle: Bundle

    @property
    def path(self) -> Path:
        return self.bundle.path

    @property
    def config(self) -> BundleConfig:
        return self.bundle.config

    @property
    def algorithm(self) -> str:
        return self.config.learner["algorithm"]

    def __fspath__(self) -> str:
        return str(self.path)


def open_meta_model(model: str | Path | MetaModel) -> MetaModel:
    """The meta-trained model at ``model``, read and checked: a model folder whose weights match
    its config, which names a known learner with valid settings and is not already adapted (an
    :class:`InputError` if not)."""
    if isinstance(model, MetaModel):
        return model
    bundle = read_bundle(model)
    recorded_learner(bundle.config.learner, bundle.path / CONFIG)
    if bundle.config.kind != "meta":
        raise InputError(model, "this model is already adapted; give the meta-trained model")
    return MetaModel(bundle)


def adapt_region(
    model_dir: str | Path | MetaModel,
    region: str | Path,
    out: str | Path,
    shots: int | None = None,
    *,
    overwrite: bool = False,
    transductive: bool = True,
    **options,
) -> AdaptResult:
    """Adapt the model in ``model_dir`` to the region dataset ``region`` (:func:`adapt`, whose
    ``options`` these are), score it on the query samples when there are some
    (:func:`cropmeta.adapt.score.score`, with ``transductive`` corrections) and save the
    mappable model at ``out`` (:func:`save`). ``out`` is claimed before any work: it must not be
    an input, nor an existing path that is not an adapted model cropmeta wrote, unless
    ``overwrite`` (:func:`cropmeta.ownership.claim`)."""
    inputs = [model_dir, region, options.get("source"), options.get("unlabelled")]
    claim(out, "adapted-model", inputs=inputs, overwrite=overwrite)
    result = score(adapt(model_dir, region, shots, **options), transductive=transductive)
    return save(result, out)


def adapt(
    model_dir: str | Path | MetaModel,
    region: str | Path,
    shots: int | None = None,
    seed: int = 0,
    baselines: bool = True,
    settings: dict | None = None,
    cv_folds: int | None = None,
    method: str | None = None,
    source: str | Path | None = None,
    shot_weight: float = 1.0,
    unlabelled: str | Path | None = None,
    forest_trees: int = FOREST_TREES,
    class_prior: list[float] | None = None,
) -> AdaptResult:
    """Adapt the model in ``model_dir`` to the region dataset ``region``, in memory (the result
    holds the model; :func:`save` writes it, :func:`adapt_region` does both).

    Without ``shots`` every labelled sample of the region is the support set (production use:
    the fields a user labelled). With ``shots`` K, K samples per class are drawn (seeded) as the
    support set and the region's other labelled samples are the query, which
    :func:`cropmeta.adapt.score.score` scores: the adapted model and the baselines — from
    scratch, random forest and, when the bundle stores a pre-trained source classifier, transfer
    (head; all layers) and source-only, and, when it stores the source samples, the pooled
    baselines (sources + shots, each shot weighing ``shot_weight`` source samples:
    :mod:`cropmeta.baselines.pooled`) — all fitted on the same support set
    (``baselines=False``: the adapted model alone), every random forest among them of
    ``forest_trees`` trees. Nothing here reads the query's labels.
    ``model_dir`` may be a model opened by :func:`open_meta_model` (read once).

    ``settings`` replace the learner's adaptation settings
    (:data:`cropmeta.learners.registry.ADAPTATION_SETTINGS`), recorded in the adapted model.
    ``cv_folds`` K also cross-validates the learner and every baseline on the support set in K
    stratified folds (:mod:`cropmeta.adapt.cross_validate`): in production, the only estimate of
    which method suits the region. ``method`` names the model to save: the learner (default), a
    baseline fitted on the same support set (:data:`cropmeta.baselines.names.BASELINES`), or
    ``"best"``: what cross-validation picks (:func:`chosen_method`; needs ``cv_folds``).
    ``source`` is the meta-model bundle whose stored source classifier and samples the
    baselines use (default: ``model_dir``'s; `cropmeta evaluate` stores it with its first
    learner only).

    The region's unlabelled samples — ``unlabelled``, a region dataset prepared like the
    model's data whose labels are ignored, or else, with ``shots``, the region's samples outside
    the support (the query's labels are never read) — serve the transductive corrections of
    :mod:`cropmeta.adapt.transductive`: :func:`~cropmeta.adapt.score.score` scores each
    applicable ``<method>+<how>`` beside its method, and ``method`` may name one to save. With
    ``cv_folds`` they also serve the cross-validation: the fold models predict up to
    :data:`~cropmeta.adapt.label_shift.BBSE_SAMPLES` of them, the region's class shares are
    estimated from those predictions (``result.class_prior``; or given as ``class_prior``:
    ``evaluate`` estimates them once per draw) and every method, and its ``+bbse``
    re-weighting to them, is scored as on the region (:func:`cross_validate`).
    """
    meta = open_meta_model(model_dir)
    model_dir, cfg = meta.path, meta.config
    method = check_method(method, cfg.learner["algorithm"])
    settings = check_adaptation(cfg.learner["algorithm"], settings or {})
    cfg = cfg.model_copy(update={"learner": {**cfg.learner, **settings}})
    learner = build_learner(cfg.learner["algorithm"], cfg.learner)
    learner.setup(build_model(cfg))  # the learner's own tensors (Meta-SGD rates) need shapes
    model = meta.bundle.model(learner.state)
    lent = Sources(forest_trees=forest_trees)  # the source classifier and samples too (below)
    if baselines or method in BASELINES:
        holder = read_bundle(source) if source else meta.bundle
        lent.classifier = load_pretrained(holder, holder.config if source else cfg)
        lent.pool = load_pool(holder, cfg.normaliser, shot_weight)
    base, how = split_variant(method)
    if base in BASELINES and base not in available(lent)[0]:  # refused before any work
        raise InputError(source or model_dir, available(lent)[1]["baselines"])
    if base in PRESTO_METHODS and (why := unreadable_by_presto(cfg.preparation.bands)):
        raise InputError(model_dir, f"{base}: {why}")
    data = RegionArrays.load(region, require_labels=True)
    if reason := incompatibility(data.preparation, cfg.preparation):
        raise InputError(region, f"prepared differently from the model's training data: {reason}")
    extra = None if unlabelled is None else RegionArrays.load(unlabelled)
    if extra is not None and (reason := incompatibility(extra.preparation, cfg.preparation)):
        raise InputError(unlabelled, f"prepared differently from the model's data: {reason}")
    if how is not None and extra is None and shots is None:
        raise InputError(region, f"{method} needs the region's unlabelled samples: --unlabelled")
    rng = np.random.default_rng(seed)
    if shots is None:
        support, query, skipped = np.arange(len(data.codes)), np.array([], int), []
    else:
        support, query, skipped = split_support_query(data.codes, shots, rng)
    if len(support) == 0 or len(np.unique(data.codes[support])) < 2:
        raise InputError(region, f"fewer than 2 classes have more than {shots} labelled samples")
    codes = np.unique(data.codes[support])
    target_codes = [int(c) for c in codes]  # the labels' taxonomy codes, in label order
    to_index = {int(c): i for i, c in enumerate(codes)}
    x = torch.from_numpy(cfg.normaliser(data.x))
    y = torch.tensor([to_index[int(c)] for c in data.codes[support]])
    fallback = None
    needs_cv = split_variant(method)[0] == BEST or split_variant(method)[1] == "bbse"
    if needs_cv and cv_folds is None:  # as many folds as can be filled
        cv_folds = min(AUTOMATIC_FOLDS, int(np.bincount(y.numpy()).min()))
        if cv_folds < 2 and split_variant(method)[1] == "bbse":
            why = "cross-validation estimates the region's priors: 2 labelled samples a class"
            raise InputError(region, f"{method}: {why}")
        if cv_folds < 2:  # one labelled sample of a class: nothing to cross-validate
            cv_folds, method = None, cfg.learner["algorithm"]
            fallback = "a class has one labelled sample: no cross-validation, the learner saved"
    if cv_folds is not None:
        names = [data.class_names.get(int(c), str(c)) for c in codes]
        check_folds(y.numpy(), cv_folds, names, region)
    doy = torch.from_numpy(data.doy).long()

    torch.manual_seed(seed)
    info = region_info(region)  # the target's location, for TIML (None: unknown)
    info = None if info is None else torch.from_numpy(info)
    start = time.perf_counter()
    known = torch.from_numpy(codes.astype(np.int64))  # each label's taxonomy code
    adapted = learner.adapt(model, x[support], y, doy, len(codes), info=info, codes=known)
    adapted_learner = adapted
    adapt_seconds = round(time.perf_counter() - start, 3)
    classes = [ClassInfo.model_validate(data.classes[int(c)]) for c in codes]
    result = AdaptResult(
        model_dir=None,
        region=data.name,
        shots=shots,
        n_support=len(support),
        n_query=len(query),
        classes=[c.name for c in classes],
        skipped_classes=[data.class_names.get(c, str(c)) for c in skipped],
        learner=cfg.learner["algorithm"],
        seconds={cfg.learner["algorithm"]: adapt_seconds},
    )
    if extra is not None:  # the user's unlabelled samples; their labels, if any, unread
        x_unlabelled = torch.from_numpy(cfg.normaliser(extra.x))
    else:  # the region's samples outside the support (the query's labels are never read)
        x_unlabelled = x[np.setdiff1d(np.arange(len(data.codes)), support)]
    name = cfg.learner["algorithm"]

    def refit(method: str, on: Shots) -> torch.nn.Module:
        """Method ``method`` fitted on ``on``'s support: the learner adapted, or a baseline."""
        if method != name:
            return baseline_model(method, on, cfg.encoder, seed, lent)
        torch.manual_seed(seed)
        n = len(on.codes)
        return learner.adapt(model, on.x_support, on.y_support, doy, n, info=info, codes=known)

    prepared = {"bands": cfg.preparation.bands, "normaliser": cfg.normaliser}
    support_on = Shots(
        x[support], y, x[support], doy, target_codes, **prepared, latlon=region_latlon(region)
    )  # the support set as every method sees it; ``x_query`` replaced where one is scored
    unl = None
    if len(x_unlabelled):
        grid = cfg.preparation.grid
        pre = lent.classifier
        unl = Unlabelled(
            x_unlabelled,
            train_prior=lambda m: training_prior(m, support_on, lent),
            refit=refit,
            learner=name,
            time_index=RegionEffects(TaskAugmentation(), grid).time_index,
            weighted_fit=lambda m: weighted_fit(m, target_codes, seed, lent),
            source=None if pre is None else lambda: source_only(pre, target_codes),
            source_prior=training_prior("source_only", support_on, lent),
            max_shift=max(1, round(MAX_SHIFT_DAYS / grid.step)),
            seed=seed,
        )
    if cv_folds is not None:
        x_s, n = x[support], len(codes)
        shift = None
        if unl is not None:  # the region's priors, for scoring methods as the region is
            sample = np.random.default_rng(seed).permutation(len(unl.x))[:BBSE_SAMPLES]
            x_prior = unl.x[np.sort(sample)]
            prior = None if class_prior is None else np.asarray(class_prior, dtype=np.float64)
            shift = PriorShift(len(x_prior), unl.train_prior, prior)

        def fit_predict(train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
            torch.manual_seed(seed)
            fold = learner.adapt(model, x_s[train], y[train], doy, n, info=info, codes=known)
            held_out = x_s[test] if shift is None else torch.cat([x_s[test], x_prior])
            on = support_on.replace(x_support=x_s[train], y_support=y[train], x_query=held_out)
            run = predict_methods(fold, cfg, on, lent, baselines, data.class_names, seed)
            result.notes |= run.notes  # what a baseline cannot do, as on the query set
            return run.proba

        result.cv_folds = cv_folds
        result.cv_metrics = cross_validate(fit_predict, y.numpy(), cv_folds, seed, shift)
        if shift is not None and shift.prior is not None:
            unl.prior = shift.prior
            result.class_prior = [round(float(v), 6) for v in shift.prior]
        if split_variant(method)[0] == BEST:
            corrects = lambda how, m: unl is not None and applies(how, m, unl)  # noqa: E731
            method = chosen_method(result.cv_metrics, method, corrects)
    result.saved = method
    if fallback:
        result.notes[BEST] = fallback
    base, how = split_variant(method)
    if base != result.learner:  # a baseline, fitted on the same support set
        adapted = refit(base, support_on)
    if how is not None:
        if unl is None:
            raise InputError(region, f"{method}: no unlabelled samples (give --unlabelled)")
        try:
            adapted = transduce(how, base, adapted, support_on, unl)
        except ValueError as exc:  # e.g. soft k-means after `best` chose a forest
            raise InputError(model_dir, f"{method}: {exc}") from None
    result.model = adapted
    result.fitting = Fitting(
        adapted_learner, cfg, support_on, lent, baselines, data, x, query, codes, unl, seed
    )
    result.config = cfg.model_copy(
        update={
            "kind": "adapted",
            "classes": classes,
            "transfer_classes": [],  # the source classifier stays in the meta-model
        }
    )
    return result


def chosen_method(
    cv_metrics: dict[str, dict[str, float]],
    named: str = BEST,
    can_correct: Callable[[str, str], bool] = lambda how, method: False,
) -> str:
    """What ``--method best[+how]`` saves: the method cross-validation ranks first (saved as
    it is when it is a ``+bbse`` re-weighting, which cross-validation scored), else with the
    named correction or else the default one
    (:data:`~cropmeta.adapt.names.DEFAULT_TRANSDUCTION`) where ``can_correct(how, method)``
    (the region's unlabelled samples are at hand and the correction applies)."""
    how = split_variant(named)[1]
    if how is not None:  # a named correction: the pick is among the plain methods
        cv_metrics = {m: v for m, v in cv_metrics.items() if split_variant(m)[1] is None}
    pick = best_method(cv_metrics)
    if split_variant(pick)[1] is not None:  # cross-validation scored the corrected method
        return pick
    if how is None and DEFAULT_TRANSDUCTION is not None:
        how = DEFAULT_TRANSDUCTION if can_correct(DEFAULT_TRANSDUCTION, pick) else None
    return variant(pick, how) if how else pick


def check_method(method: str | None, learner: str) -> str:
    """The method whose model ``adapt`` saves: the learner unless a baseline, a corrected
    method (``<method>+<how>``) or ``best`` (the cross-validation's pick) is named."""
    base, how = split_variant(method or learner)  # refuses an unknown correction
    if method is None or method in (learner, *BASELINES, BEST):
        return method or learner
    if how is not None and base in (learner, *BASELINES, BEST):
        if how == "soft_kmeans" and (learner != "protonet" or base not in (learner, BEST)):
            raise ValueError(f"method {method!r}: soft k-means refines protonet's prototypes")
        return method
    raise ValueError(
        f"method {method!r}: the learner ({learner}), one of {', '.join(BASELINES)}, or {BEST}, "
        f"optionally followed by +{' / +'.join(TRANSDUCTIONS)}"
    )
