"""Learning-rate schedules of the outer (meta) optimiser, as closed-form multipliers.

Each schedule is a pure function of the iteration, wrapped in :class:`LambdaLR`: its state is a
few numbers (JSON in a checkpoint), and a resumed run gets exactly the rates it would have had.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Schedule = Literal["cosine", "constant", "step"]


def lr_factor(
    t: int, iterations: int, schedule: Schedule, warmup: int, step_every: int, step_gamma: float
) -> float:
    """Multiplier of the base rate for update ``t`` (0-based).

    A linear warm-up over the first ``warmup`` updates, then ``cosine`` (half a cosine down to 0
    at ``iterations``), ``constant``, or ``step`` (× ``step_gamma`` every ``step_every`` updates).
    """
    if t < warmup:
        return (t + 1) / warmup
    t, span = t - warmup, max(1, iterations - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(t, span) / span))
    if schedule == "step":
        return step_gamma ** (t // step_every)
    return 1.0


def build_scheduler(opt: torch.optim.Optimizer, cfg) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule ``cfg`` (a :class:`MetaTrainConfig`) asks for, on ``opt``."""
    step_every = cfg.step_every or max(1, cfg.iterations // 3)
    return torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda t: lr_factor(
            t, cfg.iterations, cfg.schedule, cfg.warmup, step_every, cfg.step_gamma
        ),
    )
