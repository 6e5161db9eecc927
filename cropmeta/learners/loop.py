"""The meta-training loop: outer updates, validation, early stopping, checkpoints.

:func:`optimise` runs the iterations :func:`~cropmeta.learners.meta_train.meta_train` asks for on
a prepared model, learner and task sampler, resuming from a checkpoint when told to; the outer
gradients go through :mod:`cropmeta.learners.distributed`, so the same loop runs in one process
or in several under ``torchrun``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, Field

from cropmeta.learners import distributed as dist
from cropmeta.learners.checkpoint import (
    LoopState,
    Trainee,
    clear_checkpoints,
    load_checkpoint,
    save_checkpoint,
    snapshot,
)
from cropmeta.tasks.episodes import EpisodeSampler, TaskBatch

if TYPE_CHECKING:
    from cropmeta.learners.config import MetaTrainConfig

#: ``progress(iteration, iterations, metrics)``: metrics are loss, acc and the last val_acc.
Progress = Callable[[int, int, dict], None]
log = logging.getLogger(__name__)


class Diverged(RuntimeError):
    """Meta-training produced a loss or weights that are not finite numbers: continuing would
    save a model of NaNs."""


def check_finite(loss: float, t: Trainee, iteration: int) -> None:
    """Stop at the first iteration whose loss or updated weights are not finite."""
    if not math.isfinite(loss):
        raise Diverged(f"the meta-training loss is not finite at iteration {iteration}")
    params = [p for group in t.opt.param_groups for p in group["params"]]
    if not torch.stack([p.detach().isfinite().all() for p in params]).all():
        raise Diverged(f"the weights are not finite after iteration {iteration}")


class RunOptions(BaseModel):
    """Where and how a run executes. None of it changes what is learned (up to floating-point
    rounding), so a checkpoint may be resumed under other options: another device, more
    processes, another checkpoint interval."""

    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    checkpoint_every: int | None = Field(
        None, ge=1, description="write a checkpoint every N iterations and at the end"
    )
    checkpoint_dir: Path | None = Field(None, description="default: <out>.checkpoints")
    resume: bool = Field(False, description="continue from the checkpoint, if there is one")


def validate(
    t: Trainee,
    val_batch: TaskBatch,
    doy: torch.Tensor,
    ranks: dist.Ranks,
    loop: LoopState,
    patience: int | None,
) -> None:
    """Score the fixed validation tasks; keep the best weights; count towards early stopping."""
    acc = dist.mean_accuracy(t.learner, t.model, val_batch, doy, ranks)
    loop.history["val_iteration"].append(loop.iteration)
    loop.history["val_acc"].append(round(acc, 5))
    if acc > loop.best_acc:
        loop.best_acc, loop.best, loop.since_best = acc, snapshot(t.model, t.learner), 0
    else:
        loop.since_best += 1
        loop.stopped = patience is not None and loop.since_best >= patience


def optimise(
    cfg: MetaTrainConfig,
    run: RunOptions,
    t: Trainee,
    train: EpisodeSampler,
    val_batch: TaskBatch | None,
    doy: torch.Tensor,
    ranks: dist.Ranks,
    fingerprint: dict,
    folder: Path,
    progress: Progress | None,
) -> LoopState:
    """The meta-training loop, from the checkpoint in ``folder`` when resuming.

    Checkpoints are written at iteration boundaries only, so a resumed run repeats exactly the
    updates the interrupted one would have made.
    """
    progress = progress if ranks.is_main else None
    loop = LoopState(best=snapshot(t.model, t.learner))
    if run.resume and load_checkpoint(folder, fingerprint, t, loop):
        log.info("resuming %s at iteration %d", folder, loop.iteration)
    elif run.checkpoint_every and ranks.is_main:
        clear_checkpoints(folder)
    dist.broadcast_parameters([*t.model.parameters(), *t.learner.state.parameters()], ranks)
    metrics: dict[str, float] = {}
    if progress and loop.iteration:
        progress(loop.iteration, cfg.iterations, metrics)
    clock = time.perf_counter() - loop.seconds
    while loop.iteration < cfg.iterations and not loop.stopped:
        it = loop.iteration = loop.iteration + 1
        t.learner.progress = (it - 1) / cfg.iterations  # e.g. a first-order warm start's phase
        t.opt.zero_grad()
        batch = train.sample(cfg.meta_batch)
        metrics["loss"], metrics["acc"] = dist.meta_backward(t.learner, t.model, batch, doy, ranks)
        t.opt.step()
        check_finite(metrics["loss"], t, it)
        t.sched.step()
        for key in ("loss", "acc"):
            loop.history[key].append(round(metrics[key], 5))
        loop.history["iteration"].append(it)
        if val_batch is not None and (it % cfg.val_every == 0 or it == cfg.iterations):
            validate(t, val_batch, doy, ranks, loop, cfg.patience)
            metrics["val_acc"] = loop.history["val_acc"][-1]
            # when each validation ended: the time to the best one is meta-training's real cost
            loop.history.setdefault("val_seconds", []).append(round(time.perf_counter() - clock, 3))
        loop.seconds = time.perf_counter() - clock
        every = run.checkpoint_every
        if ranks.is_main and every and (it % every == 0 or it == cfg.iterations or loop.stopped):
            save_checkpoint(folder, fingerprint, t, loop)
        if progress:
            progress(it, cfg.iterations, metrics)
    return loop
