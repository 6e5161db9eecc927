"""TempCNN temporal encoder and the any-way classifier built on it."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, Field
from torch import nn


class EncoderConfig(BaseModel):
    """Architecture of the temporal encoder (recorded in every checkpoint)."""

    name: Literal["tempcnn"] = "tempcnn"
    hidden: int = Field(32, ge=4)
    kernel: int = Field(5, ge=1)
    layers: int = Field(3, ge=1)
    embed: int = Field(64, ge=4)


def doy_features(doy: torch.Tensor) -> torch.Tensor:
    """Day of year → (step, 2) sine/cosine, so the seasonal position is an explicit input."""
    angle = 2 * math.pi * doy.float() / 365.25
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)


class TempCNN(nn.Module):
    """1-D convolutions over time, then a dense embedding.

    Pelletier, Webb & Petitjean (2019), "Temporal Convolutional Neural Network for the
    Classification of Satellite Image Time Series", Remote Sensing 11(5):523. GroupNorm replaces
    BatchNorm so that every sample is encoded on its own: batch statistics would couple the
    samples of a task under ``vmap`` and make a map depend on how pixels are batched. A final
    LayerNorm keeps the embedding's scale fixed, so a gradient step on the head has the same
    size in a shifted target region as in the source tasks it was meta-learned on.
    """

    def __init__(self, n_bands: int, n_steps: int, cfg: EncoderConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = n_bands + 2
        for _ in range(cfg.layers):
            layers += [
                nn.Conv1d(channels, cfg.hidden, cfg.kernel, padding=cfg.kernel // 2),
                nn.GroupNorm(4 if cfg.hidden % 4 == 0 else 1, cfg.hidden),
                nn.ReLU(),
            ]
            channels = cfg.hidden
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cfg.hidden * n_steps, cfg.embed),
            nn.ReLU(),
            nn.LayerNorm(cfg.embed),
        )
        self.embed_dim = cfg.embed

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """``x`` (sample, step, band), ``doy`` (step,) → embedding (sample, embed)."""
        pos = doy_features(doy).to(x.dtype).expand(x.shape[0], -1, -1)
        h = torch.cat([x, pos], dim=-1).transpose(1, 2)
        return self.dense(self.convs(h))


class CropClassifier(nn.Module):
    """Encoder plus a linear head over the classes of one task or region.

    A meta-learned model has a one-row head that the learners copy to every class of a task
    (the "zero trick" of Ye & Chao, 2022, "How to Train Your MAML to Excel in Few-Shot
    Classification", ICLR): the head is then indifferent to how a task's labels are numbered and
    fits any number of classes, so a target region may have more or other classes than a task.
    """

    def __init__(self, n_bands: int, n_steps: int, cfg: EncoderConfig, n_classes: int = 1) -> None:
        super().__init__()
        self.shape = (n_bands, n_steps, cfg)
        self.encoder = TempCNN(n_bands, n_steps, cfg)
        self.head = nn.Linear(cfg.embed, n_classes)

    def with_params(self, params: dict[str, torch.Tensor], n_classes: int) -> CropClassifier:
        """A new classifier (in eval mode) holding ``params``, with an ``n_classes`` head."""
        out = CropClassifier(*self.shape, n_classes=n_classes)
        out.load_state_dict({k: v.detach().clone() for k, v in params.items()})
        return out.eval()

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x, doy))
