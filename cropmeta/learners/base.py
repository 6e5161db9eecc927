"""The functional inner loop the optimisation-based learners share, and the learner interface.

Parameters are a plain dict of tensors; a model is evaluated on them with
:func:`torch.func.functional_call`, and the inner loop takes gradients with :func:`torch.func.grad`.
Because the inner loop is a pure function of the parameters, a meta-batch of tasks is evaluated
at once with :func:`torch.func.vmap` (a loop for encoders without a vmap rule, such as LSTM), and
the outer gradient flows through the inner updates (second order) unless ``first_order`` cuts it.

A learner differs from MAML in small hooks (after the "one algorithm, three hooks" design of
EuroCropsML's meta-learning code): which parameters the inner loop adapts
(:meth:`GradientLearner.inner_keys`), the inner learning rate (:meth:`GradientLearner.inner_lr`),
and how the outer gradient is formed (:meth:`Learner.meta_backward`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn
from torch.func import functional_call, grad, vmap

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
    return F.cross_entropy(functional_call(model, params, (x, doy)), y)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
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
) -> Params:
    """``steps`` of gradient descent on the support loss; returns the adapted parameters.

    ``lr`` is one rate or a rate per parameter (a dict, as Meta-SGD learns them); ``keys``
    restricts adaptation to some parameters (ANIL: the head), the others stay as given.
    ``update(fast, grads, step)`` replaces the plain step ``p − lr·g`` when a learner forms its
    own rule (ALFA: per-step learning rates and weight decay generated from the gradients).
    """
    keys = tuple(params) if keys is None else keys
    fixed = {k: v for k, v in params.items() if k not in keys}
    fast = {k: params[k] for k in keys}
    loss_grad = grad(lambda p: task_loss(model, {**fixed, **p}, x, y, doy))
    for step in range(steps):
        grads = loss_grad(fast)
        if first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        if update is not None:
            fast = update(fast, grads, step)
        else:
            fast = {
                k: p - (lr[k] if isinstance(lr, dict) else lr) * grads[k] for k, p in fast.items()
            }
    return {**fixed, **fast}


def over_tasks(model: CropClassifier, fn: Callable, batch: TaskBatch, *shared) -> tuple:
    """``fn(*shared, x_s, y_s, x_q, y_q)`` for every task of ``batch``, outputs stacked.

    Uses :func:`vmap` when the encoder supports it, else a loop (same results).
    """
    tasks = (batch.x_s, batch.y_s, batch.x_q, batch.y_q)
    if getattr(model.encoder, "supports_vmap", True):
        in_dims = (None,) * len(shared) + (0, 0, 0, 0)
        return vmap(fn, in_dims=in_dims)(*shared, *tasks)
    outs = [fn(*shared, *(t[i] for t in tasks)) for i in range(batch.x_s.shape[0])]
    return tuple(_stack(list(o)) for o in zip(*outs, strict=True))


def _stack(items: list) -> torch.Tensor | dict:
    if isinstance(items[0], dict):
        return {k: torch.stack([d[k] for d in items]) for k in items[0]}
    return torch.stack(items)


class Learner(ABC):
    """Meta-trains on batches of tasks; adapts to a support set; the adapted model predicts.

    ``state`` holds a learner's own meta-learned tensors (Meta-SGD's learning rates); they are
    optimised with the model and saved with it.
    """

    name: str
    cfg: BaseModel

    def __init__(self, cfg: BaseModel) -> None:
        self.cfg = cfg
        self.state = nn.ParameterDict()

    def setup(self, model: CropClassifier) -> None:  # noqa: B027 - optional hook
        """Create ``state`` for ``model`` (called once before meta-training or loading)."""

    @abstractmethod
    def meta_loss(
        self, model: CropClassifier, batch: TaskBatch, doy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss and accuracy over the tasks of ``batch``."""

    def meta_backward(
        self, model: CropClassifier, batch: TaskBatch, doy: torch.Tensor
    ) -> tuple[float, float]:
        """Put the outer gradient into ``.grad`` of the model (and ``state``); return loss, acc."""
        loss, acc = self.meta_loss(model, batch, doy)
        loss.backward()
        return loss.item(), acc.item()

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


class GradientConfig(BaseModel):
    """Settings shared by the optimisation-based learners."""

    inner_steps: int = Field(5, ge=1, description="gradient steps per task in meta-training")
    inner_lr: float = Field(0.1, gt=0)
    adapt_steps: int = Field(20, ge=1, description="gradient steps when adapting to a region")
    adapt_lr: float | None = Field(
        None,
        gt=0,
        description="default: inner_lr × inner_steps / adapt_steps, the same path "
        "length as in meta-training, walked in finer steps (steadier under a region shift)",
    )
    first_order: bool = False

    @property
    def adaptation_lr(self) -> float:
        return self.adapt_lr or self.inner_lr * self.inner_steps / self.adapt_steps


class GradientLearner(Learner):
    """MAML's algorithm; subclasses change :meth:`inner_keys`, :meth:`inner_lr` or the outer step.

    Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
    Networks", ICML.
    """

    cfg: GradientConfig

    def inner_keys(self, params: Params) -> tuple[str, ...] | None:
        """Parameters the inner loop adapts (None: all)."""
        return None

    def inner_lr(self, scale: float = 1.0) -> float | Params:
        return self.cfg.inner_lr * scale

    def inner_update(self, adapting: bool = False) -> Update | None:
        """A learner's own inner step ``(fast, grads, step) -> fast`` (None: ``p − lr·g``).

        ``adapting`` is True when adapting to a region (detached, ``adapt_steps`` long).
        """
        return None

    def adapted_params(
        self,
        model: CropClassifier,
        x,
        y,
        doy,
        n_classes: int,
        params=None,
        steps: int | None = None,
        lr=None,
        first_order: bool | None = None,
        adapting: bool = False,
    ):
        params = dict(model.named_parameters()) if params is None else params
        return inner_loop(
            model,
            expand_head(params, n_classes),
            x,
            y,
            doy,
            steps or self.cfg.inner_steps,
            self.inner_lr() if lr is None else lr,
            self.cfg.first_order if first_order is None else first_order,
            self.inner_keys(params),
            self.inner_update(adapting),
        )

    def meta_loss(self, model, batch, doy):
        n_way = int(batch.y_s.max()) + 1

        def one_task(params: Params, x_s, y_s, x_q, y_q):
            fast = self.adapted_params(model, x_s, y_s, doy, n_way, params)
            logits = functional_call(model, fast, (x_q, doy))
            return F.cross_entropy(logits, y_q), accuracy(logits, y_q)

        losses, accs = over_tasks(model, one_task, batch, dict(model.named_parameters()))
        return losses.mean(), accs.mean()

    def adapt(self, model, x, y, doy, n_classes):
        start = {k: v.detach() for k, v in model.named_parameters()}
        scale = self.cfg.adaptation_lr / self.cfg.inner_lr
        lr = self.inner_lr(scale)
        if isinstance(lr, dict):
            lr = {k: v.detach() for k, v in lr.items()}
        fast = self.adapted_params(
            model,
            x,
            y,
            doy,
            n_classes,
            start,
            self.cfg.adapt_steps,
            lr,
            first_order=True,
            adapting=True,
        )
        return model.with_params(fast, n_classes)
