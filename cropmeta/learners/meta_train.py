"""Meta-training over n-way k-shot tasks drawn from several source regions."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cropmeta.errors import InputError
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.ingest.prepare import Normaliser, incompatibility
from cropmeta.learners import distributed as dist
from cropmeta.learners.checkpoint import Trainee, checkpoint_folder, restore
from cropmeta.learners.config import MetaTrainConfig
from cropmeta.learners.loop import Diverged, Progress, RunOptions, optimise
from cropmeta.learners.pretrain import PART, SOURCES, Pretrained, pretrain, source_samples
from cropmeta.learners.registry import build_learner
from cropmeta.learners.schedule import build_scheduler
from cropmeta.models.bundle import BundleConfig, build_model, save_bundle
from cropmeta.ownership import claim
from cropmeta.tasks.augment import RegionEffects
from cropmeta.tasks.episodes import EpisodeSampler, LabelledSet, TaskBatch
from cropmeta.tasks.task_info import region_info

if TYPE_CHECKING:
    from cropmeta.learners.base import GradientLearner

log = logging.getLogger(__name__)


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


def _held_out(
    data: list[RegionArrays], paths: list[Path], cfg: MetaTrainConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per region, the mask of its samples held out for validation: whole regions when
    ``val_regions`` names some (tasks from held-out regions score transfer to a new region),
    else a stratified ``val_share`` of every region (held-out fields of known regions)."""
    if not cfg.val_regions:
        return [_split(r.codes, cfg.val_share, rng) for r in data]
    names = [r.name for r in data]
    if unknown := sorted(set(cfg.val_regions) - set(names)):
        raise InputError(paths[0], f"validation region {unknown[0]!r} is not a source ({names})")
    if set(names) <= set(cfg.val_regions):
        raise InputError(paths[0], "every source is a validation region: none is left to train")
    return [np.full(len(r.codes), r.name in cfg.val_regions) for r in data]


def _pretrain(
    labelled: Callable[[Callable[[np.ndarray], np.ndarray]], list[LabelledSet]],
    doy: torch.Tensor,
    effects: RegionEffects | None,
    cfg: MetaTrainConfig,
    seed: int,
) -> Pretrained:
    """The supervised source classifier (:func:`cropmeta.learners.pretrain.pretrain`) on the
    meta-training split, early-stopped on the held-out split. It runs under its own seeded RNG,
    so calling it before or after meta-training leaves meta-training's random draws unchanged.
    ``effects`` (the meta-training tasks' simulated regions) apply with ``augment_baselines``."""
    train, val = labelled(np.logical_not), labelled(lambda h: h)
    effects = effects if cfg.augment_baselines else None
    return pretrain(train, val, doy, cfg.encoder, seed, effects=effects)


def _class_rows_from(pre: Pretrained, learner: GradientLearner) -> None:
    """Start a learner's class heads (``head_init=classes``) at the source classifier's rows:
    with its encoder as the start too, meta-training begins where source-only stands."""
    rows = {c: i for i, c in enumerate(pre.codes)}
    with torch.no_grad():
        for i, code in enumerate(learner.cfg.class_codes):
            if code in rows:
                learner.state["class_weight"][i] = pre.model.head.weight[rows[code]]
                learner.state["class_bias"][i] = pre.model.head.bias[rows[code]]


def validation_tasks(held: list[LabelledSet], cfg: MetaTrainConfig, seed: int) -> TaskBatch | None:
    """Fixed validation tasks from the held-out samples: the training tasks' shape, with as many
    queries per class (up to 5) and then as many classes (down to 2) as the held-out classes
    allow, so small regions (gee-tsda: 2-38 held-out series a class) still validate. None, with
    a warning, when not even a 2-way task with one query fits."""
    queries = range(max(1, min(cfg.q_query, 5)), 0, -1)
    for n_way, q in ((n, q) for n in range(cfg.n_way, 1, -1) for q in queries):
        try:
            tasks = EpisodeSampler(held, n_way, cfg.k_shot, q, seed).sample(cfg.val_tasks)
        except ValueError:
            continue
        if n_way < cfg.n_way:
            log.warning("held-out source samples fill %d-way validation tasks only", n_way)
        return tasks
    log.warning(
        "too few held-out source samples for validation tasks: keeping the last "
        "weights instead of the best-validated ones"
    )
    return None


def meta_train(
    regions: list[str | Path],
    out: str | Path,
    cfg: MetaTrainConfig | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    run: RunOptions | None = None,
    overwrite: bool = False,
) -> Path:
    """Meta-train a model on ``regions`` (region datasets) and save it as a bundle at ``out``.

    A stratified share of every source region is held out; a fixed set of tasks drawn from it
    scores the model every ``val_every`` iterations, and the best-scoring weights are kept
    (early model selection without touching any target region); ``patience`` stops the run
    early. ``run`` sets the device, checkpoints and resuming (:class:`RunOptions`). Under
    ``torchrun`` the processes share each meta-batch (:mod:`cropmeta.learners.distributed`) and
    only rank 0 writes checkpoints and the bundle. ``out`` and the checkpoint folder must not
    be inputs, nor existing paths cropmeta did not write as such, unless ``overwrite``
    (:func:`cropmeta.ownership.claim`).
    """
    cfg = cfg or MetaTrainConfig()
    run = run or RunOptions()
    paths = [Path(p) for p in regions]
    claim(out, "meta-model", inputs=paths, overwrite=overwrite)
    folder = run.checkpoint_dir or checkpoint_folder(out)
    if run.checkpoint_every:
        claim(
            folder,
            "checkpoints",
            inputs=[*paths, out],
            overwrite=overwrite,
            option="--checkpoint-dir",
        )
    device = dist.resolve_device(run.device)
    data = [RegionArrays.load(p, require_labels=True) for p in paths]
    check_compatible(data, paths)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    held = _held_out(data, paths, cfg, rng)
    normaliser = Normaliser.fit(np.concatenate([r.x[~h] for r, h in zip(data, held, strict=True)]))
    if not normaliser.finite:
        raise InputError(
            ", ".join(map(str, paths)), "band values too large to standardise (not finite)"
        )

    if cfg.encoder.name == "presto":  # Presto maps bands by name and undoes the standardisation
        fed = {"bands": list(data[0].preparation.bands), "normaliser": normaliser}
        cfg = cfg.model_copy(update={"encoder": cfg.encoder.model_copy(update=fed)})
    infos = [region_info(p) for p in paths]  # task information (location), for TIML

    def labelled(mask_of: Callable[[np.ndarray], np.ndarray]) -> list[LabelledSet]:
        return [
            LabelledSet(r.name, normaliser(r.x[mask_of(h)]), r.codes[mask_of(h)], info)
            for r, h, info in zip(data, held, infos, strict=True)
        ]

    effects = RegionEffects(cfg.augment, data[0].preparation.grid) if cfg.augment.active else None
    try:
        train = EpisodeSampler(
            labelled(np.logical_not), cfg.n_way, cfg.k_shot, cfg.q_query, seed, effects
        )
    except ValueError as exc:
        raise InputError(paths[0], str(exc)) from None
    val_batch = validation_tasks(labelled(lambda h: h), cfg, seed + 1)

    prep = data[0].preparation
    doy = torch.from_numpy(data[0].doy).long()
    settings = cfg.learner.model_dump()
    if settings.get("head_init") == "classes":  # a head row per class the sources teach
        codes = {int(c) for r, h in zip(data, held, strict=True) for c in np.unique(r.codes[~h])}
        settings = {**settings, "class_codes": sorted(codes)}
    learner = build_learner(cfg.algorithm, settings)
    bundle = BundleConfig(
        kind="meta",
        preparation=prep,
        normaliser=normaliser,
        encoder=cfg.encoder,
        learner={"algorithm": cfg.algorithm, **learner.cfg.model_dump()},
        seed=seed,
    )
    model = build_model(bundle)
    # --- init="pretrained": start from the supervised source classifier's encoder; the head stays
    # the learner's own (a pre-trained head's rows are over the sources' codes, not task labels)
    pretrained = None
    if cfg.init == "pretrained":
        pretrained = _pretrain(labelled, doy, effects, cfg, seed)
        model.encoder.load_state_dict(pretrained.model.encoder.state_dict())
    # --- end of the init block
    learner.setup(model)
    if pretrained is not None and "class_weight" in learner.state:
        _class_rows_from(pretrained, learner)
    fingerprint = {
        "config": json.loads(cfg.model_dump_json()),
        "seed": seed,
        "regions": {r.name: len(r.codes) for r in data},
    }
    with dist.process_group(device) as (ranks, device):
        dist.check_split(cfg.meta_batch, ranks)
        model.to(device)
        learner.state.to(device)
        opt = torch.optim.Adam(learner.meta_parameters(model), cfg.meta_lr)
        t = Trainee(model, learner, opt, build_scheduler(opt, cfg), train.rng)
        try:
            loop = optimise(
                cfg, run, t, train, val_batch, doy.to(device), ranks, fingerprint, folder, progress
            )
        except Diverged as exc:
            raise InputError(
                ", ".join(map(str, paths)),
                f"{exc}; look for extreme values in these datasets",
            ) from None
    if val_batch is not None:
        restore(model, learner, loop.best)
    if not ranks.is_main:
        return Path(out)
    history = loop.history
    history.update(
        best_val_acc=loop.best_acc,
        seconds=round(loop.seconds, 2),
        regions=[r.name for r in data],
        config=json.loads(cfg.model_dump_json()),
        init=cfg.init,
        threads=torch.get_num_threads(),  # intra-op threads it ran with (cropmeta.threads)
    )
    if loop.stopped:
        history["stopped_early"] = loop.iteration
    bundle.history = history
    # --- baselines (cropmeta.baselines): the source classifier (same split, same normaliser) and
    # the source samples, stored in the bundle
    parts = {}
    if cfg.baselines:
        # one pre-training for both
        pre = pretrained or _pretrain(labelled, doy, effects, cfg, seed)
        bundle.transfer_classes, bundle.history["transfer"] = pre.codes, pre.history
        parts = {PART: pre.model, SOURCES: source_samples(data, cfg.source_samples, seed)}
    elif pretrained is not None:
        bundle.history["transfer"] = pretrained.history
    # --- end of the baselines block
    return save_bundle(model, bundle, out, learner.state, parts=parts)
