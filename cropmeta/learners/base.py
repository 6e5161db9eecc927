"""The learner interface, and MAML's algorithm that the optimisation-based learners share.

A learner differs from MAML in small hooks (after the "one algorithm, three hooks" design of
EuroCropsML's meta-learning code): which parameters the inner loop adapts
(:meth:`GradientLearner.inner_keys`), the inner learning rate (:meth:`GradientLearner.inner_lr`),
and how the outer gradient is formed (:meth:`Learner.meta_backward`). The inner loop itself is
:mod:`cropmeta.learners.inner_loop`. Two settings trade time for memory in meta-training,
leaving the gradient as it is: ``checkpoint`` recomputes each inner step's graph in the
backward pass instead of keeping all of them (:meth:`GradientLearner.meta_loss`), and
``task_chunk`` backpropagates the meta-batch a few tasks at a time
(:meth:`Learner.meta_backward`). benchmarks/maml_speed.py measures both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, Field
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from cropmeta.learners.inner_loop import (
    HEAD,
    Params,
    Update,
    expand_head,
    inner_loop,
    inner_step,
    query_loss,
)
from cropmeta.learners.task_map import map_tasks, task_chunks
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.heads import prototype_head
from cropmeta.tasks.episodes import TaskBatch


def _call(fn: Callable, *args):
    return fn(*args)


def _checkpointed(fn: Callable, *args):
    return checkpoint(fn, *args, use_reentrant=True)


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
        #: the share of meta-training's iterations done (set by the loop before each one)
        self.progress = 1.0

    def setup(self, model: CropClassifier) -> None:  # noqa: B027 - optional hook
        """Create ``state`` for ``model`` (called once before meta-training or loading)."""

    def meta_parameters(self, model: CropClassifier) -> list[nn.Parameter]:
        """What the outer optimiser updates: the model's parameters and the learner's state."""
        return [*model.parameters(), *self.state.parameters()]

    @abstractmethod
    def meta_loss(
        self, model: CropClassifier, batch: TaskBatch, doy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss and accuracy over the tasks of ``batch``."""

    def meta_backward(
        self, model: CropClassifier, batch: TaskBatch, doy: torch.Tensor
    ) -> tuple[float, float]:
        """Put the outer gradient into ``.grad`` of the model (and ``state``); return loss, acc.

        With a ``task_chunk`` setting the tasks go through :meth:`meta_loss` that many at a time,
        each chunk's loss backpropagated (weighted by its share of the tasks) before the next is
        formed: the same gradient as the whole meta-batch at once, with only one chunk's graph
        alive (a per-task loop keeps one task's; vmap over all tasks keeps every task's).
        """
        n = len(batch.x_s)
        loss_sum = acc_sum = 0.0
        for part in task_chunks(batch, getattr(self.cfg, "task_chunk", None) or n):
            share = len(part.x_s) / n
            loss, acc = self.meta_loss(model, part, doy)
            (loss * share).backward()
            loss_sum, acc_sum = loss_sum + loss.item() * share, acc_sum + acc.item() * share
        return loss_sum, acc_sum

    @abstractmethod
    def adapt(
        self,
        model: CropClassifier,
        x: torch.Tensor,
        y: torch.Tensor,
        doy: torch.Tensor,
        n_classes: int,
        info: torch.Tensor | None = None,
        codes: torch.Tensor | None = None,
    ) -> CropClassifier:
        """A new classifier over ``n_classes`` adapted to the support set (x, y).

        ``info`` is the target's task information (:mod:`cropmeta.tasks.task_info`); only
        task-informed learners (TIML) use it. ``codes`` are the taxonomy codes of the labels
        0..n_classes-1; only learners with class heads (``head_init=classes``) use them.
        """


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
    first_order_warmup: float = Field(
        0.0,
        ge=0,
        le=1,
        description="the first fraction of meta-training's iterations in first order (FOMAML's "
        "outer gradient, without the inner steps' second derivatives: cheaper), the rest in "
        "second order — a warm start for MAML (issue 21)",
    )
    head_init: Literal["shared", "prototypes", "classes"] = Field(
        "shared",
        description="a task's head before its first inner step: the meta-learned row copied to "
        "every class (Ye & Chao, 2022), or that plus the prototype classifier of the task's "
        "support embeddings (Proto-MAML: Triantafillou et al., 2020, ICLR), its squared "
        "distances divided by the embedding's width so that the first logits are of order one "
        "(unscaled, the normalised embedding's distances saturate the softmax and the inner "
        "steps diverge), or a meta-learned row per taxonomy class of the sources (classes: "
        "a class keeps what the sources taught about it, as in transfer learning; a class the "
        "sources never had starts from the rows' mean)",
    )
    class_codes: list[int] = Field(
        [],
        description="head_init=classes: the taxonomy codes with a head row, sorted; "
        "meta-training sets them to its sources' codes",
    )
    task_chunk: int | None = Field(
        None,
        ge=1,
        description="meta-training: tasks vmapped and backpropagated together (default: the "
        "whole meta-batch); fewer keep less of the graph alive, for the same gradient",
    )
    checkpoint: bool = Field(
        False,
        description="meta-training: gradient checkpointing of the inner steps (each step's "
        "graph recomputed in the backward pass instead of kept): less memory, more compute; "
        "the meta-loss must then be backpropagated with .backward(), not torch.autograd.grad",
    )

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

    def meta_parameters(self, model: CropClassifier) -> list[nn.Parameter]:
        """All but the one-row head, whose outer gradient is zero: the row is copied to every
        class and softmax is blind to a shift shared by all classes, so the query loss does not
        depend on it (Ye & Chao, 2022). Left to Adam, its rounding-noise gradient would move it
        by up to the learning rate every step, harmlessly but nondeterministically across
        process counts."""
        head = {id(p) for p in model.head.parameters()}
        return [p for p in super().meta_parameters(model) if id(p) not in head]

    def setup(self, model: CropClassifier) -> None:
        """With ``head_init=classes``: one head row per class code, all starting as the
        model's one-row head (subclasses add their own tensors after calling this)."""
        if self.cfg.head_init != "classes":
            return
        if not self.cfg.class_codes or self.cfg.class_codes != sorted(set(self.cfg.class_codes)):
            raise ValueError("head_init=classes needs class_codes: distinct, sorted")
        n = len(self.cfg.class_codes)
        self.state["class_weight"] = nn.Parameter(model.head.weight.detach().repeat(n, 1))
        self.state["class_bias"] = nn.Parameter(model.head.bias.detach().repeat(n))

    def class_head(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Head rows (weight, bias) for the taxonomy ``codes`` (any shape, one per label): a
        class's own meta-learned row, or the rows' mean for a code without one."""
        weight, bias = self.state["class_weight"], self.state["class_bias"]
        known = torch.tensor(self.cfg.class_codes, device=weight.device)
        codes = codes.to(known)
        row = torch.searchsorted(known, codes).clamp(max=len(known) - 1)
        has_row = known[row] == codes
        return (
            torch.where(has_row[..., None], weight[row], weight.mean(0)),
            torch.where(has_row, bias[row], bias.mean()),
        )

    def inner_lr(self, scale: float = 1.0) -> float | Params:
        return self.cfg.inner_lr * scale

    def start_params(
        self, model: nn.Module, params: Params, x, y, doy, n_classes: int, codes=None
    ) -> Params:
        """A task's parameters before its first inner step (see ``head_init``).

        Proto-MAML's head starts as nearest-prototype classification of the support set's
        embeddings (Triantafillou et al., 2020, "Meta-Dataset", ICLR): every class starts
        where a prototypical network would put it (its distances divided by the embedding's
        width), and the outer gradient flows through the prototypes into the encoder. Class
        heads start each label at its class code's row (``codes``: None, none known).
        """
        start = expand_head(params, n_classes)
        if self.cfg.head_init == "classes":
            codes = torch.full((n_classes,), -1) if codes is None else torch.as_tensor(codes)
            rows = self.class_head(codes)
            if not start["head.weight"].requires_grad:  # adapting: nothing to differentiate
                rows = tuple(r.detach() for r in rows)
            start["head.weight"], start["head.bias"] = rows
        elif self.cfg.head_init == "prototypes":
            emb = functional_call(model, params, (x, doy), {"embedding": True})
            weight, bias = prototype_head(emb, y, n_classes)
            scale = 1 / emb.shape[-1]  # the embedding's width: see ``head_init``
            start["head.weight"] = start["head.weight"] + scale * weight
            start["head.bias"] = start["head.bias"] + scale * bias
        return start

    def inner_update(self, adapting: bool = False) -> Update | None:
        """A learner's own inner step ``(fast, grads, step) -> fast`` (None: ``p − lr·g``).

        ``adapting`` is True when adapting to a region (detached, ``adapt_steps`` long).
        """
        return None

    def first_order_now(self) -> bool:
        """Whether the outer gradient drops the inner steps' second derivatives now: always
        with ``first_order``, else during the ``first_order_warmup`` share of meta-training."""
        return self.cfg.first_order or self.progress < self.cfg.first_order_warmup

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
        codes=None,
    ):
        params = dict(model.named_parameters()) if params is None else params
        return inner_loop(
            model,
            self.start_params(model, params, x, y, doy, n_classes, codes),
            x,
            y,
            doy,
            steps or self.cfg.inner_steps,
            self.inner_lr() if lr is None else lr,
            self.first_order_now() if first_order is None else first_order,
            self.inner_keys(params),
            self.inner_update(adapting),
            keep_best=adapting,
        )

    def meta_loss(self, model, batch, doy):
        """The inner loop step by step, each step mapped over the tasks (:func:`map_tasks`).

        The adapted parameters pass from step to step stacked over tasks, so that a step can be
        a unit of gradient checkpointing (Chen, Xu, Zhang & Guestrin, 2016, "Training Deep Nets
        with Sublinear Memory Cost", arXiv:1604.06174): with ``checkpoint`` a step keeps only
        its input and recomputes its graph when the backward pass reaches it, so that the graph
        of one step is alive at a time instead of all ``inner_steps``. It is
        :func:`torch.utils.checkpoint.checkpoint`'s reentrant variant, the one that composes
        with :func:`torch.func.grad` inside (the other's saved-tensor hooks are refused under
        torch.func, torch 2.13), around the task map, never inside a vmap.
        """
        params = dict(model.named_parameters())
        n_way = int(batch.y_s.max()) + 1
        names = self.inner_keys(params) or tuple(params)
        run = _checkpointed if self.cfg.checkpoint and torch.is_grad_enabled() else _call
        values, dims = self._task_starts(model, params, names, batch, doy)
        for step in range(self.cfg.inner_steps):
            step_fn = self._tasks_step(model, params, names, batch, doy, step, dims)
            values, dims = run(step_fn, *values), 0
        fixed = {k: v for k, v in expand_head(params, n_way).items() if k not in names}
        return query_loss(model, names, values, fixed, batch, doy)

    def _task_starts(self, model, params: Params, names: tuple[str, ...], batch: TaskBatch, doy):
        """The adapted ``names`` before the first inner step, and their task dimension: shared
        by all tasks (None), or, with prototype or class heads, the head rows stacked over
        tasks (0)."""
        n_way = int(batch.y_s.max()) + 1
        start = expand_head(params, n_way)
        if self.cfg.head_init == "shared":
            return tuple(start[k] for k in names), None
        if self.cfg.head_init == "classes":
            if batch.codes is None:
                raise ValueError("head_init=classes needs tasks that carry their class codes")
            rows = self.class_head(batch.codes)
        else:

            def heads(x, y):
                task = self.start_params(model, params, x, y, doy, n_way)
                return tuple(task[k] for k in HEAD)

            rows = map_tasks(model, heads, (0, 0), batch.x_s, batch.y_s)
        per_task = dict(zip(HEAD, rows, strict=True))
        values = tuple(per_task.get(k, start[k]) for k in names)
        return values, tuple(0 if k in per_task else None for k in names)

    def _tasks_step(
        self,
        model,
        params: Params,
        names: tuple[str, ...],
        batch: TaskBatch,
        doy,
        step: int,
        dims: int | tuple | None,
    ) -> Callable:
        """Inner step ``step`` of every task: the adapted ``names`` (stacked over the tasks as
        ``dims`` says) → the next ones, stacked.

        What the step reads besides them (held parameters, rates) is formed here, for this step
        alone: a graph shared by the steps would be freed by the first checkpoint's backward.
        """
        n_way = int(batch.y_s.max()) + 1
        fixed = {k: v for k, v in expand_head(params, n_way).items() if k not in names}
        lr, update, first_order = self.inner_lr(), self.inner_update(), self.first_order_now()

        def one_task(values, x, y):
            fast = dict(zip(names, values, strict=True))
            fast, _ = inner_step(model, fixed, fast, x, y, doy, step, lr, first_order, update)
            return tuple(fast[k] for k in names)

        in_dims = (dims, 0, 0)  # dims: which of the values are stacked over tasks
        return lambda *values: map_tasks(model, one_task, in_dims, values, batch.x_s, batch.y_s)

    def adapt(self, model, x, y, doy, n_classes, info=None, codes=None):
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
            codes=codes,
        )
        return model.with_params(fast, n_classes)
