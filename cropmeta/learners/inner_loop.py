"""The functional inner loop the optimisation-based learners share, and the query loss.

Parameters are a plain dict of tensors; a model is evaluated on them with
:func:`torch.func.functional_call`, and the inner loop takes gradients with :func:`torch.func.grad`.
Because the inner loop is a pure function of the parameters, a meta-batch of tasks is evaluated
at once with :func:`torch.func.vmap` (:mod:`cropmeta.learners.task_map`), and the outer gradient
flows through the inner updates (second order) unless ``first_order`` cuts it. The query loss's
gradient is taken as soon as it is formed (:func:`query_loss`), so its graph is never kept.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value
from torch.utils._pytree import tree_map

from cropmeta.learners.task_map import map_tasks
from cropmeta.models.classifier import CropClassifier
from cropmeta.tasks.episodes import TaskBatch

Params = dict[str, torch.Tensor]
HEAD = ("head.weight", "head.bias")
Update = Callable[[Params, Params, int], Params]


def expand_head(params: Params, n_classes: int) -> Params:
    """Copy a one-row head to ``n_classes`` rows (see :class:`CropClassifier`)."""
    out = dict(params)
    out["head.weight"] = params["head.weight"].expand(n_classes, -1)
    out["head.bias"] = params["head.bias"].expand(n_classes)
    return out


def task_loss(
    model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, doy: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of ``model`` evaluated on ``params`` (the support loss the inner loop
    descends)."""
    return F.cross_entropy(functional_call(model, params, (x, doy)), y)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Share of samples whose highest logit is their class."""
    return (logits.argmax(-1) == y).float().mean()


def inner_loop(
    model: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    steps: int,
    lr: float | Params,
    first_order: bool = False,
    keys: tuple[str, ...] | None = None,
    update: Update | None = None,
    keep_best: bool = False,
) -> Params:
    """``steps`` of gradient descent on the support loss; returns the adapted parameters.

    ``lr`` is one rate or a rate per parameter (a dict, as Meta-SGD learns them); ``keys``
    restricts adaptation to some parameters (ANIL: the head), the others stay as given.
    ``update(fast, grads, step)`` replaces the plain step ``p − lr·g`` when a learner forms its
    own rule (ALFA: per-step learning rates and weight decay generated from the gradients).
    ``keep_best`` (adaptation to a region, not meta-training) returns the iterate with the
    lowest support loss instead of the last: a learned rule may raise the loss again on a
    target unlike the sources (ALFA meta-learns negative late-step rates), and the support
    set is all a user has labelled, so this guard reads nothing else.
    """
    keys = tuple(params) if keys is None else keys
    fixed = {k: v for k, v in params.items() if k not in keys}
    fast = {k: params[k] for k in keys}
    best: tuple[float, Params] | None = None
    for step in range(steps):
        stepped, loss = inner_step(model, fixed, fast, x, y, doy, step, lr, first_order, update)
        if keep_best and (best is None or loss.item() < best[0]):
            best = (loss.item(), fast)
        fast = stepped
    if keep_best:  # the last iterate's loss is the only one no step has computed
        with torch.no_grad():
            last = task_loss(model, {**fixed, **fast}, x, y, doy).item()
        if best is None or last < best[0]:
            best = (last, fast)
    return {**fixed, **(fast if best is None else best[1])}


def inner_step(
    model: nn.Module,
    fixed: Params,
    fast: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    step: int,
    lr: float | Params,
    first_order: bool = False,
    update: Update | None = None,
) -> tuple[Params, torch.Tensor]:
    """Step ``step`` of :func:`inner_loop`: ``fast`` after one gradient step (``fixed`` held),
    and the support loss at ``fast`` that the step's gradient came with."""
    grads, loss = grad_and_value(lambda p: task_loss(model, {**fixed, **p}, x, y, doy))(fast)
    if first_order:
        grads = {k: g.detach() for k, g in grads.items()}
    if update is not None:
        return update(fast, grads, step), loss
    stepped = {k: p - (lr[k] if isinstance(lr, dict) else lr) * grads[k] for k, p in fast.items()}
    return stepped, loss


def query_loss(
    model: CropClassifier,
    names: tuple[str, ...],
    values: tuple[torch.Tensor, ...],
    fixed: Params,
    batch: TaskBatch,
    doy: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean query loss and accuracy of the adapted parameters (``names``: ``values``, stacked
    over tasks; ``fixed`` shared), as a loss whose backward pass starts from their gradients.

    The query loss is differentiated once only, so its gradient with respect to the adapted
    and the held parameters is taken right away (:func:`torch.func.grad`), a chunk of queries
    at a time, no larger than the support set: the query graph — with more queries than
    support samples the largest piece of the meta-graph (benchmarks/maml_speed.py: 3 queries a
    support sample, 22 of 37 MiB for one inner step and the query) — is never kept, and at its
    largest no larger than an inner step's. The returned loss has the query loss's value and,
    through the surrogate Σ p·∂L/∂p, its gradient, which the backward pass carries on into the
    inner loop. The same gradient as backpropagating the query loss, summed in another order.
    """
    if not torch.is_grad_enabled():  # validation: no gradient wanted
        return query_value(model, names, values, fixed, batch, doy)
    n_q, size = batch.x_q.shape[1], batch.x_s.shape[1]
    held = {k: v.detach() for k, v in fixed.items()}

    def chunk_loss(adapted, shared, x, y):
        logits = functional_call(
            model, {**shared, **dict(zip(names, adapted, strict=True))}, (x, doy)
        )
        loss = F.cross_entropy(logits, y, reduction="sum") / n_q
        return loss, (loss.detach(), (logits.argmax(-1) == y).sum() / n_q)

    def one_task(adapted, x, y):
        total = None
        for i in range(0, n_q, size):
            grads, (loss, hits) = grad(chunk_loss, argnums=(0, 1), has_aux=True)(
                adapted, held, x[i : i + size], y[i : i + size]
            )
            part = (grads, loss, hits)
            total = part if total is None else tree_map(torch.add, total, part)
        return total

    detached = tuple(v.detach() for v in values)
    (g_adapted, g_held), losses, accs = map_tasks(
        model, one_task, (0, 0, 0), detached, batch.x_q, batch.y_q
    )
    tasks = len(losses)
    surrogate = sum((v * g).sum() for v, g in zip(values, g_adapted, strict=True)) + sum(
        (fixed[k] * g.sum(0)).sum() for k, g in g_held.items()
    )
    loss = losses.mean() + (surrogate - surrogate.detach()) / tasks
    return loss, accs.mean()


def query_value(model, names, values, fixed, batch, doy) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`query_loss` without its gradient."""

    def one_task(values, x, y):
        logits = functional_call(
            model, {**fixed, **dict(zip(names, values, strict=True))}, (x, doy)
        )
        return F.cross_entropy(logits, y), accuracy(logits, y)

    losses, accs = map_tasks(model, one_task, (0, 0, 0), values, batch.x_q, batch.y_q)
    return losses.mean(), accs.mean()
