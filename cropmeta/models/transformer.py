"""A small Transformer encoder over a satellite image time series, positioned by day of year.

Vaswani et al. (2017), "Attention Is All You Need", NeurIPS; applied to crop-type mapping by
Rußwurm & Körner (2020), "Self-attention for raw optical Satellite Time Series Classification",
ISPRS J. Photogramm. Remote Sens. 169:421-435. As in Garnot & Landrieu (2020, L-TAE) the
sinusoidal positional encoding is computed from the acquisition's day of year, not from the step
index, so that the same date gets the same code in every region whatever its calendar.

The attention is written with plain tensor operations rather than ``nn.MultiheadAttention``:
on CPU the latter dispatches to a fused scaled-dot-product kernel that has no vmap batching rule
and no double backward, so second-order MAML under ``torch.func.vmap`` would fail with it.

Normalisation uses the plain-ops ``LayerNorm`` of :mod:`cropmeta.models.encoders` (the fused
``nn.LayerNorm`` gives wrong second derivatives under vmap). The day-of-year encoding defined
here is shared with L-TAE.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cropmeta.models.encoders import EncoderConfig, LayerNorm, with_doy


def doy_encoding(doy: torch.Tensor, dim: int, period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal positional encoding (step, dim) of the day of year ``doy`` (step,).

    Channel ``i`` oscillates with wavelength ``2π · period^(2⌊i/2⌋/dim)`` days, even channels as
    sine and odd ones as cosine (Vaswani et al., 2017). ``period=1000`` is the value L-TAE uses
    for positions counted in days (Garnot & Landrieu, 2020).
    """
    idx = torch.arange(dim, device=doy.device)
    rate = period ** (-(idx // 2 * 2).float() / dim)
    angle = doy.float()[:, None] * rate[None, :]
    return torch.where(idx % 2 == 0, torch.sin(angle), torch.cos(angle))


def check_heads(width: int, heads: int) -> int:
    """Channels per head; ``width`` must split evenly into ``heads`` groups."""
    if width % heads:
        raise ValueError(f"hidden={width} does not split into heads={heads} equal groups")
    return width // heads


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over the steps of each sample."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = check_heads(width, heads)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` (sample, step, width) → (sample, step, width)."""
        n, t, w = h.shape
        q, k, v = self.qkv(h).reshape(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (sample, head, step, step)
        mixed = torch.softmax(scores, dim=-1) @ v  # (sample, head, step, head_dim)
        return self.out(mixed.transpose(1, 2).reshape(n, t, w))


class TransformerLayer(nn.Module):
    """Pre-norm encoder layer (attention, then a two-layer feed-forward), no dropout.

    Pre-norm (Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture",
    ICML) trains without a learning-rate warm-up, which the few-step inner loop cannot have.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm2 = LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm1(h))
        return h + self.ff(self.norm2(h))


class TransformerEncoder(nn.Module):
    """Bands (+ annual sin/cos) → ``cfg.hidden`` channels + day-of-year positional encoding →
    ``cfg.layers`` pre-norm layers of ``cfg.heads`` heads → mean over steps → ``cfg.embed``.

    Mean pooling makes the embedding independent of the number of steps; the positional
    encoding is what lets it tell an early from a late green-up.
    """

    supports_vmap = True

    def __init__(self, n_bands: int, n_steps: int, cfg: EncoderConfig) -> None:
        super().__init__()
        check_heads(cfg.hidden, cfg.heads)
        self.width = cfg.hidden
        self.proj = nn.Linear(n_bands + 2, cfg.hidden)
        self.layers = nn.ModuleList(
            TransformerLayer(cfg.hidden, cfg.heads) for _ in range(cfg.layers)
        )
        self.norm = LayerNorm(cfg.hidden)
        self.out = nn.Sequential(nn.Linear(cfg.hidden, cfg.embed), LayerNorm(cfg.embed))

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """``x`` (sample, step, band), ``doy`` (step,) → embedding (sample, embed)."""
        h = self.proj(with_doy(x, doy)) + doy_encoding(doy, self.width).to(x.dtype)
        for layer in self.layers:
            h = layer(h)
        return self.out(self.norm(h).mean(dim=1))
