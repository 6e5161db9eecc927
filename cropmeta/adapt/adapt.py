"""Adapt a meta-trained model to a new region from a handful of labelled fields."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cropmeta.adapt.baselines import from_scratch, random_forest
from cropmeta.errors import InputError
from cropmeta.evaluate.metrics import score
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.ingest.prepare import incompatibility
from cropmeta.learners.registry import build_learner
from cropmeta.models.bundle import (
    BundleConfig,
    ClassInfo,
    build_model,
    load_bundle,
    load_config,
    save_bundle,
)
from cropmeta.tasks.episodes import split_support_query


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
    skipped_classes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "model_dir": str(self.model_dir)}, indent=2)


def adapt_region(
    model_dir: str | Path,
    region: str | Path,
    out: str | Path,
    shots: int | None = None,
    seed: int = 0,
) -> AdaptResult:
    """Adapt the model in ``model_dir`` to the region dataset ``region``; save a mappable model.

    Without ``shots`` every labelled sample of the region is the support set (production use:
    the fields a user labelled). With ``shots`` K, K samples per class are drawn (seeded) as the
    support set, and the adapted model, a model trained from scratch and a random forest — all
    fitted on those same samples — are scored on the region's other labelled samples.
    """
    cfg = load_config(model_dir)
    learner = build_learner(cfg.learner["algorithm"], cfg.learner)
    learner.setup(build_model(cfg))  # the learner's own tensors (Meta-SGD rates) need shapes
    model, _ = load_bundle(model_dir, learner.state)
    if cfg.kind != "meta":
        raise InputError(model_dir, "this model is already adapted; give the meta-trained model")
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
    to_index = {int(c): i for i, c in enumerate(codes)}
    x = torch.from_numpy(cfg.normaliser(data.x))
    y = torch.tensor([to_index[int(c)] for c in data.codes[support]])
    doy = torch.from_numpy(data.doy).long()

    torch.manual_seed(seed)
    adapted = learner.adapt(model, x[support], y, doy, len(codes))
    classes = [ClassInfo.model_validate(data.classes[int(c)]) for c in codes]
    result = AdaptResult(
        model_dir=Path(out),
        region=data.name,
        shots=shots,
        n_support=len(support),
        n_query=len(query),
        classes=[c.name for c in classes],
        skipped_classes=[data.class_names.get(c, str(c)) for c in skipped],
    )
    if len(query):
        result.metrics = _compare(adapted, cfg, x, data.codes, support, query, to_index, doy, seed)
    adapted_cfg = cfg.model_copy(
        update={
            "kind": "adapted",
            "classes": classes,
            "history": {**cfg.history, "adaptation": json.loads(result.to_json())},
        }
    )
    save_bundle(adapted, adapted_cfg, out)
    return result


def _compare(adapted, cfg: BundleConfig, x, codes, support, query, to_index, doy, seed):
    """Score the adapted model and the baselines on the query samples of known classes."""
    known = np.array([int(c) in to_index for c in codes[query]])
    query = query[known]
    y_true = np.array([to_index[int(c)] for c in codes[query]])
    y_sup = torch.tensor([to_index[int(c)] for c in codes[support]])
    n = len(to_index)
    with torch.no_grad():
        pred_meta = adapted(x[query], doy).argmax(-1).numpy()
    scratch = from_scratch(x[support], y_sup, doy, n, cfg.encoder, seed)
    with torch.no_grad():
        pred_scratch = scratch(x[query], doy).argmax(-1).numpy()
    rf = random_forest(x[support].numpy(), y_sup.numpy(), seed)
    pred_rf = rf.predict(x[query].numpy().reshape(len(query), -1))
    return {
        cfg.learner["algorithm"]: score(y_true, pred_meta),
        "from_scratch": score(y_true, pred_scratch),
        "random_forest": score(y_true, pred_rf),
    }
