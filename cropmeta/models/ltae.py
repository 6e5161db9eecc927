"""L-TAE: one learned query per head attends over time to pool a series into one vector.

Garnot & Landrieu (2020), "Lightweight Temporal Attention Encoder for the Classification of
Satellite Image Time Series", ECML-PKDD Workshop on Advanced Analytics and Learning on Temporal
Data. Compared with a full Transformer it has no step-to-step attention, no value projection and
no feed-forward per step: each head's master query scores every step's key, and the head pools
its own group of channels with those weights. That makes it small (few parameters to adapt from
a handful of shots) and linear in the number of steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cropmeta.models.encoders import EncoderConfig, LayerNorm, with_doy
from cropmeta.models.transformer import check_heads, doy_encoding


class LTAE(nn.Module):
    """Bands (+ annual sin/cos) → Linear + LayerNorm to ``cfg.hidden`` channels in ``cfg.heads``
    groups, plus a day-of-year positional encoding → per-head master-query attention over steps
    → concatenated head outputs → MLP → ``cfg.embed`` → LayerNorm.

    As in the authors' implementation the positional encoding has the width of one group and is
    repeated over the groups, so every head sees the same temporal code. Plain tensor operations
    throughout, so the encoder runs under ``torch.func.vmap`` and second-order ``grad``.
    """

    supports_vmap = True

    def __init__(self, n_bands: int, n_steps: int, cfg: EncoderConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.group = check_heads(cfg.hidden, cfg.heads)
        self.key_dim = self.group
        self.proj = nn.Sequential(nn.Linear(n_bands + 2, cfg.hidden), LayerNorm(cfg.hidden))
        self.keys = nn.Linear(cfg.hidden, cfg.heads * self.key_dim)
        # the paper initialises the master queries as N(0, 2 / d_k)
        self.query = nn.Parameter(
            torch.randn(cfg.heads, self.key_dim) * math.sqrt(2 / self.key_dim)
        )
        self.mlp = nn.Sequential(
            nn.Linear(cfg.hidden, cfg.embed),
            nn.ReLU(),
            nn.Linear(cfg.embed, cfg.embed),
            LayerNorm(cfg.embed),
        )

    def attention(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """Attention weights (sample, head, step); each head's weights sum to one over steps."""
        return self._attend(x, doy)[1]

    def _attend(self, x: torch.Tensor, doy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, t, _ = x.shape
        pos = doy_encoding(doy, self.group).to(x.dtype).repeat(1, self.heads)
        h = self.proj(with_doy(x, doy)) + pos  # (sample, step, hidden)
        k = self.keys(h).reshape(n, t, self.heads, self.key_dim)
        scores = torch.einsum("sthd,hd->sht", k, self.query) / math.sqrt(self.key_dim)
        weights = torch.softmax(scores, dim=-1)
        return h.reshape(n, t, self.heads, self.group), weights

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """``x`` (sample, step, band), ``doy`` (step,) → embedding (sample, embed)."""
        values, weights = self._attend(x, doy)
        pooled = torch.einsum("sht,sthc->shc", weights, values)  # (sample, head, group)
        return self.mlp(pooled.reshape(x.shape[0], -1))
