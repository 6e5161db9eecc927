"""Reptile: move the initialisation towards the weights each task's training reaches.

Nichol, Achiam & Schulman (2018), "On First-Order Meta-Learning Algorithms", arXiv:1803.02999.
No query loss is differentiated: the outer "gradient" is θ − mean over tasks of φ_task, where
φ_task is θ after ``inner_steps`` of SGD on the task's support set; the outer optimiser steps
along it (with plain SGD and rate ε this is exactly θ ← θ + ε (φ̄ − θ)).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch.func import functional_call

from cropmeta.learners.base import GradientConfig, GradientLearner
from cropmeta.learners.inner_loop import accuracy
from cropmeta.learners.task_map import over_tasks


class ReptileConfig(GradientConfig):
    name: Literal["reptile"] = "reptile"
    first_order: bool = True
    head_init: Literal["shared", "prototypes"] = Field(
        "shared", description="as MAML's; no class heads: Reptile's step moves model weights only"
    )


class Reptile(GradientLearner):
    name = "reptile"

    def meta_backward(self, model, batch, doy) -> tuple[float, float]:
        n_way = int(batch.y_s.max()) + 1
        params = {k: v.detach() for k, v in model.named_parameters()}

        def one_task(p, x_s, y_s, x_q, y_q):
            fast = self.adapted_params(model, x_s, y_s, doy, n_way, p, first_order=True)
            logits = functional_call(model, fast, (x_q, doy))
            loss = torch.nn.functional.cross_entropy(logits, y_q)
            rows = {
                k: v.mean(0, keepdim=True) if k == "head.weight" else v for k, v in fast.items()
            }
            rows["head.bias"] = fast["head.bias"].mean(0, keepdim=True)
            return loss, accuracy(logits, y_q), rows

        losses, accs, reached = over_tasks(model, one_task, batch, params)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.grad = p - reached[name].mean(0)
        return losses.mean().item(), accs.mean().item()
