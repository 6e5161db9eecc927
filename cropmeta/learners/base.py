"""The functional inner loop every optimisation-based learner shares, and the learner interface.

Parameters are a plain dict of tensors; a model is evaluated on them with
:func:`torch.func.functional_call`, and the inner loop takes gradients with :func:`torch.func.grad`.
Because the inner loop is a pure function of the parameters, a meta-batch of tasks is evaluated
at once with :func:`torch.func.vmap`, and the outer gradient flows through the inner updates
(second order) unless ``first_order`` cuts it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from cropmeta.models.tempcnn import CropClassifier
from cropmeta.tasks.episodes import TaskBatch

Params = dict[str, torch.Tensor]


def expand_head(params: Params, n_classes: int) -> Params:
    """Copy a one-row head to ``n_classes`` rows (see :class:`CropClassifier`)."""
    out = dict(params)
    out["head.weight"] = params["head.weight"].expand(n_classes, -1)
    out["head.bias"] = params["head.bias"].expand(n_classes)
    return out


def task_loss(
    model: torch.nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, doy: torch.Tensor
) -> torch.Tensor:
    return F.cross_entropy(functional_call(model, params, (x, doy)), y)


def inner_loop(
    model: torch.nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    steps: int,
    lr: float | Params,
    first_order: bool = False,
) -> Params:
    """``steps`` of gradient descent on the support loss; returns the adapted parameters.

    ``lr`` is one rate or a rate per parameter (a dict, as Meta-SGD learns them).
    """
    loss_grad = grad(lambda p: task_loss(model, p, x, y, doy))
    for _ in range(steps):
        grads = loss_grad(params)
        if first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        params = {
            k: p - (lr[k] if isinstance(lr, dict) else lr) * grads[k] for k, p in params.items()
        }
    return params


class Learner(ABC):
    """Meta-trains on batches of tasks; adapts to a support set; the adapted model predicts."""

    name: str

    @abstractmethod
    def meta_loss(
        self, model: CropClassifier, batch: TaskBatch, doy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss and accuracy over the tasks of ``batch`` (differentiable loss)."""

    @abstractmethod
    def adapt(
        self,
        model: CropClassifier,
        x: torch.Tensor,
        y: torch.Tensor,
        doy: torch.Tensor,
        n_classes: int,
    ) -> CropClassifier:
        """A new classifier over ``n_classes`` adapted to the support set (x, y)."""
