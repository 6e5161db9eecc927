"""Meta-training over n-way k-shot tasks drawn from several source regions."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field

from cropmeta.errors import InputError
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.ingest.prepare import Normaliser, incompatibility
from cropmeta.learners.registry import build_learner
from cropmeta.models.bundle import BundleConfig, build_model, save_bundle
from cropmeta.models.encoders import EncoderConfig
from cropmeta.tasks.episodes import EpisodeSampler, LabelledSet

Progress = Callable[[int, int, dict], None]
log = logging.getLogger(__name__)


class MetaTrainConfig(BaseModel):
    """Task shape, optimisation and model choices of a meta-training run."""

    algorithm: str = "maml"
    learner: dict = Field(default_factory=dict, description="the learner's own settings")
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    n_way: int = Field(5, ge=2)
    k_shot: int = Field(5, ge=1)
    q_query: int = Field(10, ge=1)
    meta_batch: int = Field(4, ge=1)
    iterations: int = Field(300, ge=1)
    meta_lr: float = Field(1e-3, gt=0)
    val_share: float = Field(0.2, ge=0.05, le=0.5, description="source samples held out")
    val_every: int = Field(50, ge=1)
    val_tasks: int = Field(16, ge=1)


def check_compatible(regions: list[RegionArrays], paths: list[Path]) -> None:
    """All regions must share bands and temporal grid, or tasks would mix unlike series."""
    ref = regions[0].preparation
    for region, path in zip(regions[1:], paths[1:], strict=True):
        if reason := incompatibility(region.preparation, ref):
            raise InputError(path, f"prepared differently from {paths[0]}: {reason}")


def _split(codes: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of held-out samples: ``share`` of every class (stratified)."""
    held = np.zeros(len(codes), bool)
    for c in np.unique(codes):
        idx = rng.permutation(np.flatnonzero(codes == c))
        held[idx[: int(round(share * len(idx)))]] = True
    return held


def _snapshot(model, learner) -> tuple[dict, dict]:
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        {k: v.detach().clone() for k, v in learner.state.state_dict().items()},
    )


def meta_train(
    regions: list[str | Path],
    out: str | Path,
    cfg: MetaTrainConfig | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Meta-train a model on ``regions`` (region datasets) and save it as a bundle at ``out``.

    A stratified share of every source region is held out; a fixed set of tasks drawn from it
    scores the model every ``val_every`` iterations, and the best-scoring weights are kept
    (early model selection without touching any target region).
    """
    cfg = cfg or MetaTrainConfig()
    paths = [Path(p) for p in regions]
    data = [RegionArrays.load(p) for p in paths]
    check_compatible(data, paths)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    held = [_split(r.codes, cfg.val_share, rng) for r in data]
    normaliser = Normaliser.fit(np.concatenate([r.x[~h] for r, h in zip(data, held, strict=True)]))

    def labelled(mask_of: Callable[[np.ndarray], np.ndarray]) -> list[LabelledSet]:
        return [
            LabelledSet(r.name, normaliser(r.x[mask_of(h)]), r.codes[mask_of(h)])
            for r, h in zip(data, held, strict=True)
        ]

    try:
        train = EpisodeSampler(labelled(np.logical_not), cfg.n_way, cfg.k_shot, cfg.q_query, seed)
    except ValueError as exc:
        raise InputError(paths[0], str(exc)) from None
    try:
        val_q = max(1, min(cfg.q_query, 5))
        val = EpisodeSampler(labelled(lambda h: h), cfg.n_way, cfg.k_shot, val_q, seed + 1)
        val_batch = val.sample(cfg.val_tasks)
    except ValueError:
        log.warning(
            "too few held-out source samples for validation tasks: keeping the last "
            "weights instead of the best-validated ones"
        )
        val_batch = None

    prep = data[0].preparation
    doy = torch.from_numpy(data[0].doy).long()
    learner = build_learner(cfg.algorithm, cfg.learner)
    bundle = BundleConfig(
        kind="meta",
        preparation=prep,
        normaliser=normaliser,
        encoder=cfg.encoder,
        learner={"algorithm": cfg.algorithm, **learner.cfg.model_dump()},
        seed=seed,
    )
    model = build_model(bundle)
    learner.setup(model)
    opt = torch.optim.Adam([*model.parameters(), *learner.state.parameters()], lr=cfg.meta_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.iterations)
    history: dict[str, list] = {
        "iteration": [],
        "loss": [],
        "acc": [],
        "val_iteration": [],
        "val_acc": [],
    }
    best = (-1.0, _snapshot(model, learner))
    start = time.perf_counter()
    for it in range(1, cfg.iterations + 1):
        opt.zero_grad()
        loss, acc = learner.meta_backward(model, train.sample(cfg.meta_batch), doy)
        opt.step()
        sched.step()
        history["iteration"].append(it)
        history["loss"].append(round(loss, 5))
        history["acc"].append(round(acc, 5))
        if val_batch is not None and (it % cfg.val_every == 0 or it == cfg.iterations):
            _, val_acc = learner.meta_loss(model, val_batch, doy)
            history["val_iteration"].append(it)
            history["val_acc"].append(round(val_acc.item(), 5))
            if val_acc.item() > best[0]:
                best = (val_acc.item(), _snapshot(model, learner))
        if progress:
            progress(it, cfg.iterations, {"loss": loss, "acc": acc})
    if val_batch is not None:
        model.load_state_dict(best[1][0])
        learner.state.load_state_dict(best[1][1])
    history.update(
        best_val_acc=best[0],
        seconds=round(time.perf_counter() - start, 2),
        regions=[r.name for r in data],
        config=json.loads(cfg.model_dump_json()),
    )
    bundle.history = history
    return save_bundle(model, bundle, out, learner.state)
