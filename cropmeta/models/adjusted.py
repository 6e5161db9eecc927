"""An adapted model with what the target region's unlabelled samples taught it.

Two corrections learnt without labels (:mod:`cropmeta.adapt.transductive`) change how a
fitted model reads a region rather than the model itself: the target's crop calendar runs
some steps later or earlier than the sources' (phenology-shift alignment, TimeMatch: the series
are re-indexed before the model reads them), and its crops are not as common as in the data
the model was fitted on (label shift: the log-posteriors move by log π_t / π_s). Both are
small, readable facts, so they live in the config (``time_index``, ``log_prior_ratio`` and the
estimated ``target_prior``) around the member's own config and weights (``member.*``); the
model saves, loads and maps as one, and the map applies exactly what evaluation scored.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, Field
from torch import nn


class AdjustedHeadConfig(BaseModel):
    """A fitted model (``member``, a :class:`cropmeta.models.bundle.BundleConfig` as JSON) and
    the corrections applied around it; a correction left None is not applied."""

    kind: Literal["adjusted"] = "adjusted"
    member: dict = Field(description="the fitted model's bundle config")
    time_index: list[int] | None = Field(
        None, description="the input step each step the member reads is taken from (alignment)"
    )
    log_prior_ratio: list[float] | None = Field(
        None, description="log(target prior / training prior) per class, added to log-posteriors"
    )
    target_prior: list[float] | None = Field(
        None, description="the region's class priors as estimated (for readers)"
    )
    shift_steps: int = Field(0, description="the estimated phenology shift, in grid steps")


class AdjustedClassifier(nn.Module):
    """``model(x, doy)``: the member's log-probabilities of the re-indexed series, moved by the
    log prior ratio and normalised again."""

    def __init__(self, cfg: AdjustedHeadConfig, member: nn.Module) -> None:
        super().__init__()
        self.cfg, self.member = cfg, member
        index = cfg.time_index
        ratio = cfg.log_prior_ratio
        # not saved: the config holds them; buffers move with the model's device
        self.register_buffer(
            "index", torch.tensor(index if index is not None else [], dtype=torch.long), False
        )
        self.register_buffer(
            "ratio", torch.tensor(ratio if ratio is not None else [], dtype=torch.float32), False
        )

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        if len(self.index):
            x = x[:, self.index]
        out = self.member(x, doy).log_softmax(-1)
        if len(self.ratio):
            out = (out + self.ratio).log_softmax(-1)
        return out
