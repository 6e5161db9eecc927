"""Fitting a model to a support set: the one training loop every shots-only fit shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

M = TypeVar("M", bound=nn.Module)


def fit_on_shots(
    module: M,
    scores: Callable[[], torch.Tensor],
    y: torch.Tensor,
    steps: int,
    lr: float,
    weight_decay: float,
    weight: torch.Tensor | None = None,
) -> M:
    """Full-batch Adam on the cross-entropy of ``scores()`` against the shots' labels ``y``
    (the ``weight``-ed mean over samples when given); returns ``module`` in eval mode (every
    baseline fitted on a support set trains this way)."""
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    module.train()
    for _ in range(steps):
        opt.zero_grad()
        if weight is None:
            loss = F.cross_entropy(scores(), y)
        else:
            loss = (F.cross_entropy(scores(), y, reduction="none") * weight).sum() / weight.sum()
        loss.backward()
        opt.step()
    return module.eval()
