"""An LSTM encoder over a satellite image time series.

Rußwurm & Körner (2017), "Temporal Vegetation Modelling using Long Short-Term Memory Networks
for Crop Identification from Medium-Resolution Multi-Spectral Satellite Images", CVPR
Workshops (EarthVision). ``nn.LSTM`` has no ``torch.func.vmap`` batching rule once its weights
are batched (as they are per task in a meta-batch), so the learners loop over tasks for it.
"""

from __future__ import annotations

import torch
from torch import nn

from cropmeta.models.encoders import EncoderConfig, LayerNorm, with_doy


class LSTMEncoder(nn.Module):
    """Bands + day-of-year sin/cos → ``cfg.layers``-layer LSTM of ``cfg.hidden`` units → the
    top layer's final hidden state → Linear → ``cfg.embed`` → LayerNorm.

    The final hidden state has read the whole season in calendar order, so it summarises the
    phenology; the LayerNorm keeps the embedding's scale region-independent as for TempCNN.
    """

    supports_vmap = False

    def __init__(self, n_bands: int, n_steps: int, cfg: EncoderConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_bands + 2, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.out = nn.Sequential(nn.Linear(cfg.hidden, cfg.embed), LayerNorm(cfg.embed))

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """``x`` (sample, step, band), ``doy`` (step,) → embedding (sample, embed)."""
        _, (h_n, _) = self.lstm(with_doy(x, doy))
        return self.out(h_n[-1])
