"""MAML: learn an initialisation from which a few gradient steps fit a new task.

Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML. ``first_order=True`` gives FOMAML (the outer gradient ignores the inner
updates' second derivatives). The head is a single row copied to every class of a task
(Ye & Chao, 2022), so adaptation works for any number of target classes.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, Field
from torch.func import functional_call, vmap

from cropmeta.learners.base import Learner, Params, expand_head, inner_loop, task_loss
from cropmeta.models.tempcnn import CropClassifier
from cropmeta.tasks.episodes import TaskBatch


class MAMLConfig(BaseModel):
    name: Literal["maml"] = "maml"
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


class MAML(Learner):
    name = "maml"

    def __init__(self, cfg: MAMLConfig | None = None) -> None:
        self.cfg = cfg or MAMLConfig()

    def meta_loss(
        self, model: CropClassifier, batch: TaskBatch, doy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_way = int(batch.y_s.max()) + 1
        params = dict(model.named_parameters())

        def one_task(p: Params, x_s, y_s, x_q, y_q) -> tuple[torch.Tensor, torch.Tensor]:
            fast = inner_loop(
                model,
                expand_head(p, n_way),
                x_s,
                y_s,
                doy,
                self.cfg.inner_steps,
                self.cfg.inner_lr,
                self.cfg.first_order,
            )
            logits = functional_call(model, fast, (x_q, doy))
            return task_loss(model, fast, x_q, y_q, doy), (logits.argmax(-1) == y_q).float().mean()

        losses, accs = vmap(one_task, in_dims=(None, 0, 0, 0, 0))(
            params, batch.x_s, batch.y_s, batch.x_q, batch.y_q
        )
        return losses.mean(), accs.mean()

    def adapt(
        self,
        model: CropClassifier,
        x: torch.Tensor,
        y: torch.Tensor,
        doy: torch.Tensor,
        n_classes: int,
    ) -> CropClassifier:
        start = {k: v.detach() for k, v in model.named_parameters()}
        fast = inner_loop(
            model,
            expand_head(start, n_classes),
            x,
            y,
            doy,
            self.cfg.adapt_steps,
            self.cfg.adaptation_lr,
            first_order=True,
        )
        return model.with_params(fast, n_classes)
