"""TempCNN: 1-D convolutions over time, then a dense embedding."""

from __future__ import annotations

import torch
from torch import nn

from cropmeta.models.encoders import EncoderConfig, LayerNorm, with_doy


class TempCNN(nn.Module):
    """Pelletier, Webb & Petitjean (2019), "Temporal Convolutional Neural Network for the
    Classification of Satellite Image Time Series", Remote Sensing 11(5):523.

    GroupNorm replaces BatchNorm so that every sample is encoded on its own: batch statistics
    would couple the samples of a task under ``vmap`` and make a map depend on how pixels are
    batched.
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
            LayerNorm(cfg.embed),
        )

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """``x`` (sample, step, band), ``doy`` (step,) → embedding (sample, embed)."""
        return self.dense(self.convs(with_doy(x, doy).transpose(1, 2)))
