"""Adapt a meta-trained model to a new region from a handful of labelled fields."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cropmeta.adapt.cross_validate import best_method, check_folds, cross_validate
from cropmeta.adapt.names import BEST
from cropmeta.baselines.names import BASELINES
from cropmeta.baselines.pooled import load_pool
from cropmeta.baselines.run import Shots, Sources, available, baseline_model, baseline_predictions
from cropmeta.baselines.transfer import load_pretrained
from cropmeta.errors import InputError
from cropmeta.evaluate.metrics import class_details, score
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.ingest.prepare import incompatibility
from cropmeta.learners.registry import build_learner, check_adaptation, recorded_learner
from cropmeta.models.bundle import (
    CONFIG,
    ClassInfo,
    build_model,
    load_bundle,
    load_config,
    save_bundle,
)
from cropmeta.ownership import claim
from cropmeta.tasks.episodes import split_support_query
from cropmeta.tasks.task_info import region_info


@dataclass
class AdaptResult:
    """The adapted model's folder and, with ``shots``, metrics of every method on the query set."""

    model_dir: Path
    region: str
    shots: int | None
    n_support: int
    n_query: int
    classes: list[str]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    details: dict[str, dict[str, list]] = field(default_factory=dict)  # per-class F1, confusion
    seconds: dict[str, float] = field(default_factory=dict)  # adaptation / fitting time
    skipped_classes: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    learner: str = ""  # the meta-learner's name: its entry in ``metrics``; the others are baselines
    cv_folds: int | None = None  # with ``cv_folds``: every method cross-validated on the support
    cv_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    saved: str = ""  # the method whose model was saved: the learner, or a baseline
    # with ``shots``: the adapted learner's class probabilities of the query samples and their
    # true classes, for scoring ensembles (:mod:`cropmeta.adapt.ensemble`); not in the JSON
    query_proba: torch.Tensor | None = field(default=None, repr=False)
    query_truth: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> str:
        kept = {k: v for k, v in self.__dict__.items() if not k.startswith("query_")}
        return json.dumps({**kept, "model_dir": str(self.model_dir)}, indent=2)


def adapt_region(
    model_dir: str | Path,
    region: str | Path,
    out: str | Path,
    shots: int | None = None,
    seed: int = 0,
    baselines: bool = True,
    settings: dict | None = None,
    cv_folds: int | None = None,
    method: str | None = None,
    source: str | Path | None = None,
    overwrite: bool = False,
    shot_weight: float = 1.0,
) -> AdaptResult:
    """Adapt the model in ``model_dir`` to the region dataset ``region``; save a mappable model.

    Without ``shots`` every labelled sample of the region is the support set (production use:
    the fields a user labelled). With ``shots`` K, K samples per class are drawn (seeded) as the
    support set, and the adapted model and the baselines — from scratch, random forest and, when
    the bundle stores a pre-trained source classifier, transfer (head; all layers) and
    source-only, and, when it stores the source samples, the pooled baselines (sources + shots,
    each shot weighing ``shot_weight`` source samples: :mod:`cropmeta.baselines.pooled`) — all
    fitted on those same samples, are scored on the region's other labelled
    samples (``baselines=False``: the adapted model alone). ``settings`` replace the learner's
    adaptation settings (:data:`cropmeta.learners.registry.ADAPTATION_SETTINGS`), recorded in
    the adapted model. ``cv_folds`` K also cross-validates the learner and every baseline on
    the support set in K stratified folds (:mod:`cropmeta.adapt.cross_validate`): in production,
    the only estimate of which method suits the region. ``method`` names the model to save: the
    learner (default), a baseline fitted on the same support set
    (:data:`cropmeta.baselines.names.BASELINES`), or ``"best"``: whichever cross-validation ranks
    first (:func:`cropmeta.adapt.cross_validate.best_method`; needs ``cv_folds``). ``source``
    is the meta-model bundle whose stored source classifier and samples the baselines use (default:
    ``model_dir``'s; `cropmeta evaluate` stores it with its first learner only). ``out`` must
    not be an input, nor an existing path that is not an adapted model cropmeta wrote, unless
    ``overwrite`` (:func:`cropmeta.ownership.claim`).
    """
    claim(out, "adapted-model", inputs=[model_dir, region, source], overwrite=overwrite)
    cfg = load_config(model_dir)
    recorded_learner(cfg.learner, Path(model_dir) / CONFIG)
    method = check_method(method, cfg.learner["algorithm"], cv_folds)
    settings = check_adaptation(cfg.learner["algorithm"], settings or {})
    cfg = cfg.model_copy(update={"learner": {**cfg.learner, **settings}})
    learner = build_learner(cfg.learner["algorithm"], cfg.learner)
    learner.setup(build_model(cfg))  # the learner's own tensors (Meta-SGD rates) need shapes
    model, _ = load_bundle(model_dir, learner.state)
    if cfg.kind != "meta":
        raise InputError(model_dir, "this model is already adapted; give the meta-trained model")
    lent = Sources()  # the source classifier and samples (of another bundle: its config)
    if baselines or method in BASELINES:
        holder = source or model_dir
        lent.classifier = load_pretrained(holder, load_config(source) if source else cfg)
        lent.pool = load_pool(holder, cfg.normaliser, shot_weight)
    if method in BASELINES and method not in available(lent)[0]:  # refused before any work
        raise InputError(source or model_dir, available(lent)[1]["baselines"])
    data = RegionArrays.load(region)
    if reason := incompatibility(data.preparation, cfg.preparation):
        raise InputError(region, f"prepared differently from the model's training data: {reason}")
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
    adapt_seconds = round(time.perf_counter() - start, 3)
    classes = [ClassInfo.model_validate(data.classes[int(c)]) for c in codes]
    result = AdaptResult(
        model_dir=Path(out),
        region=data.name,
        shots=shots,
        n_support=len(support),
        n_query=len(query),
        classes=[c.name for c in classes],
        skipped_classes=[data.class_names.get(c, str(c)) for c in skipped],
        learner=cfg.learner["algorithm"],
        seconds={cfg.learner["algorithm"]: adapt_seconds},
    )
    if len(query):
        kept = query[np.isin(data.codes[query], codes)]  # classes with a support sample
        y_true = np.array([to_index[int(c)] for c in data.codes[kept]])
        on = Shots(x[support], y, x[kept], doy, target_codes)
        predictions, result.notes, seconds, result.query_proba = _predict(
            adapted, cfg, on, lent, baselines, data, seed
        )
        result.query_truth = y_true
        result.seconds |= seconds
        result.metrics = {name: score(y_true, p) for name, p in predictions.items()}
        result.details = {
            name: class_details(y_true, p, len(codes)) for name, p in predictions.items()
        }
    if cv_folds is not None:
        x_s, n = x[support], len(codes)

        def fit_predict(train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
            torch.manual_seed(seed)
            fold = learner.adapt(model, x_s[train], y[train], doy, n, info=info, codes=known)
            on = Shots(x_s[train], y[train], x_s[test], doy, target_codes)
            predictions, notes, _, _ = _predict(fold, cfg, on, lent, baselines, data, seed)
            result.notes |= notes  # what a baseline cannot do, as on the query set
            return predictions

        result.cv_folds = cv_folds
        result.cv_metrics = cross_validate(fit_predict, y.numpy(), cv_folds, seed)
        if method == BEST:
            method = best_method(result.cv_metrics)
    result.saved = method
    if method != result.learner:  # a baseline, fitted on the same support set
        on = Shots(x[support], y, x[support], doy, target_codes)
        adapted = baseline_model(method, on, cfg.encoder, seed, lent)
    adapted_cfg = cfg.model_copy(
        update={
            "kind": "adapted",
            "classes": classes,
            "transfer_classes": [],  # the source classifier stays in the meta-model
            "history": {**cfg.history, "adaptation": json.loads(result.to_json())},
        }
    )
    save_bundle(adapted, adapted_cfg, out)
    return result


def check_method(method: str | None, learner: str, cv_folds: int | None = None) -> str:
    """The method whose model ``adapt`` saves: the learner unless a baseline or ``best`` (the
    cross-validation's pick, so only with ``cv_folds``) is named."""
    if method == BEST and cv_folds is None:
        raise ValueError("method 'best' is the one cross-validation ranks first: give --cv too")
    if method is None or method in (learner, *BASELINES, BEST):
        return method or learner
    raise ValueError(
        f"method {method!r}: the learner ({learner}), one of {', '.join(BASELINES)}, or {BEST}"
    )


def _predict(adapted, cfg, on: Shots, sources: Sources, baselines: bool, data, seed: int):
    """Query predictions of the adapted model and (``baselines``) of every baseline fitted on
    the same support set, the notes on what a baseline could not do, the baselines' fitting
    times, and the adapted model's class probabilities of the query samples."""
    with torch.no_grad():
        logits = adapted(on.x_query, on.doy)
    predictions, proba = {cfg.learner["algorithm"]: logits.argmax(-1).numpy()}, logits.softmax(-1)
    if not baselines:
        return predictions, {}, {}, proba
    run = baseline_predictions(on, cfg.encoder, seed, sources, data.class_names)
    return predictions | run.predictions, run.notes, run.seconds, proba
