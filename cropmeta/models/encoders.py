"""What every temporal encoder shares: its configuration and building blocks.

Encoders map (sample, step, band) series + day of year → an embedding; they are built by name
in :mod:`cropmeta.models.encoder_registry`.

Every encoder takes the day of year of each step as an input (``doy_features``), so a model
trained on one acquisition calendar works on another, and ends in a LayerNorm, so the
embedding's scale is the same in every region (a gradient step on the head then has the same
size in a shifted target region as in the source tasks it was meta-learned on).
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, Field, model_validator
from torch import nn

from cropmeta.ingest.prepare import Normaliser
from cropmeta.models.names import EncoderName
from cropmeta.models.sizes import MAX_WIDTH, Count

#: The embedding size of the pretrained Presto encoder (:mod:`cropmeta.models.presto`).
PRESTO_EMBED = 128


class EncoderConfig(BaseModel):
    """Architecture of the temporal encoder (recorded in every checkpoint).

    Fields an encoder does not use are ignored by it.
    """

    name: EncoderName = "tempcnn"
    hidden: int = Field(32, ge=4, le=MAX_WIDTH, description="channels / hidden units / model width")
    kernel: Count = Field(5, description="TempCNN kernel size")
    layers: Count = 3
    embed: int = Field(64, ge=4, le=MAX_WIDTH, description="embedding size the head reads")
    heads: Count = Field(4, description="attention heads (transformer, L-TAE)")
    bands: list[str] = Field(
        default_factory=list,
        description="presto: the series' band names, mapped to Presto's inputs (filled in by "
        "meta-training from the data's preparation)",
    )
    normaliser: Normaliser | None = Field(
        None,
        description="presto: the standardisation of its inputs, undone before Presto's own "
        "(filled in by meta-training)",
    )

    @model_validator(mode="after")
    def _presto_embedding(self) -> EncoderConfig:
        """Presto's embedding is 128 wide: set it, and refuse another size asked for."""
        if self.name == "presto":
            if "embed" in self.model_fields_set and self.embed != PRESTO_EMBED:
                raise ValueError(f"presto's embedding is {PRESTO_EMBED} wide, not {self.embed}")
            self.embed = PRESTO_EMBED
        return self


def doy_features(doy: torch.Tensor) -> torch.Tensor:
    """Day of year → (step, 2) sine/cosine, so the seasonal position is an explicit input."""
    angle = 2 * math.pi * doy.float() / 365.25
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)


def with_doy(x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
    """Append the day-of-year features to every sample's bands: (sample, step, band + 2)."""
    pos = doy_features(doy).to(x.dtype).expand(x.shape[0], -1, -1)
    return torch.cat([x, pos], dim=-1)


class LayerNorm(nn.Module):
    """LayerNorm written with plain tensor operations (same parameters as ``nn.LayerNorm``).

    ``nn.LayerNorm``'s fused kernel gives wrong second derivatives under ``torch.func.vmap``
    (torch 2.13: the vmapped MAML meta-gradient differed from an explicit unroll by ~1%, see
    tests/learners/test_learners.py); composing it from mean and variance keeps every transform
    exact.
    """

    def __init__(self, size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
