"""What adaptation returns: the adapted model in memory, what was fitted for scoring it, and
the figures; :func:`save` writes the model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cropmeta.adapt.transductive import Unlabelled
from cropmeta.baselines.run import Shots, Sources
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.models.bundle import BundleConfig, save_bundle


@dataclass
class Fitting:
    """What :func:`cropmeta.adapt.adapt.adapt` fitted and drew, kept for
    :func:`cropmeta.adapt.score.score`: the learner's adapted model, the support set as every
    method sees it, the sources the baselines use, and the query samples (their labels unread
    until scoring)."""

    learner_model: torch.nn.Module
    config: BundleConfig
    support: Shots
    sources: Sources
    baselines: bool  # the baselines compete beside the learner
    data: RegionArrays
    x: torch.Tensor  # every sample of the region, normalised as the model's data
    query: np.ndarray  # indices of the query samples in ``data``
    codes: np.ndarray  # the support's taxonomy codes, in class order
    unlabelled: Unlabelled | None
    seed: int


@dataclass
class AdaptResult:
    """The adapted model (in memory, and its folder once saved) and, once scored with
    ``shots``, metrics of every method on the query set."""

    model_dir: Path | None
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
    # the region's class shares (label order) estimated by cross-validation with its unlabelled
    # samples (:func:`cropmeta.adapt.label_shift.bbse_priors`); None: not estimated
    class_prior: list[float] | None = None
    saved: str = ""  # the method whose model was saved: the learner, or a baseline
    # once scored: the adapted learner's class probabilities of the query samples and their
    # true classes, for scoring ensembles (:mod:`cropmeta.adapt.ensemble`); not in the JSON
    query_proba: torch.Tensor | None = field(default=None, repr=False)
    query_truth: np.ndarray | None = field(default=None, repr=False)
    # the adapted model and its configuration, until :func:`save` writes them (not in the JSON)
    model: torch.nn.Module | None = field(default=None, repr=False)
    config: BundleConfig | None = field(default=None, repr=False)
    fitting: Fitting | None = field(default=None, repr=False)

    def __fspath__(self) -> str:
        """The adapted model's folder: a saved result goes wherever a model path does (``map``)."""
        if self.model_dir is None:
            raise ValueError("the adapted model is not saved yet (cropmeta.adapt.adapt.save)")
        return str(self.model_dir)

    def to_json(self) -> str:
        kept = {k: v for k, v in self.__dict__.items() if k not in IN_MEMORY}
        model_dir = None if self.model_dir is None else str(self.model_dir)
        return json.dumps({**kept, "model_dir": model_dir}, indent=2)


#: AdaptResult's fields that stay in memory: tensors, models and data, not figures
IN_MEMORY = ("query_proba", "query_truth", "model", "config", "fitting")


def save(result: AdaptResult, out: str | Path) -> AdaptResult:
    """Write the adapted model of ``result`` as a bundle at ``out`` (claimed by the caller),
    its adaptation (figures, settings, threads) in the bundle's history; ``result`` then names
    the folder."""
    result.model_dir = Path(out)
    adaptation = json.loads(result.to_json()) | {"threads": torch.get_num_threads()}
    history = {**result.config.history, "adaptation": adaptation}
    save_bundle(result.model, result.config.model_copy(update={"history": history}), out)
    return result
