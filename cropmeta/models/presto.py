"""Presto, a pretrained transformer over pixel time series, with its published weights.

Tseng, Cartuyvels, Zvonkov, Purohit, Rolnick & Kerner (2023), "Lightweight, Pre-trained
Transformers for Remote Sensing Timeseries", arXiv:2304.14065. Presto is the encoder behind ESA
WorldCereal's crop maps: its frozen embedding plus a classifier fitted on the reference labels
is the baseline a crop mapper would pick instead of a meta-learned encoder.

Written here from the paper and the facts of the authors' implementation (github
nasaharvest/presto, ``presto/presto.py``), so that the authors' weights load unchanged:

* the input is 12 months × 17 bands (:data:`BANDS`), normalised as ``(x + shift) / div``;
* a token is one channel group (:data:`GROUPS`, one linear patch embedding each) at one month,
  plus [month encoding (32) | learned channel-group embedding (32) | sinusoidal position (64)];
  the static SRTM group gives a single token whose month and position parts are zero; Dynamic
  World land-cover classes are one more group of tokens (class 9 = missing);
* a masked token (its group missing in that month: any of the group's bands masked) takes no
  part: the authors drop it, here it is excluded from attention as a key and from the pooling,
  which gives the same embedding and keeps shapes static (``torch.func.vmap`` friendly);
* one extra, never-masked token embeds the location: (lat, lon) → unit-sphere (x, y, z);
* two pre-norm ViT blocks (8 heads, MLP ratio 4, qkv bias), the mean over the unmasked
  tokens, a final LayerNorm: the 128-d embedding the authors return with ``eval_task=True``.

Attention and LayerNorm are written with plain tensor operations (the project's
:class:`~cropmeta.models.encoders.LayerNorm`): fused kernels have no vmap rule or give wrong
second derivatives under vmap, and the learners meta-train through this module.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from cropmeta.errors import InputError
from cropmeta.fileinfo import sha256
from cropmeta.models.encoders import LayerNorm

#: Presto's channel groups, in the order of its channel embedding rows (Dynamic World is 9).
GROUPS: dict[str, tuple[str, ...]] = {
    "S1": ("VV", "VH"),
    "S2_RGB": ("B2", "B3", "B4"),
    "S2_Red_Edge": ("B5", "B6", "B7"),
    "S2_NIR_10m": ("B8",),
    "S2_NIR_20m": ("B8A",),
    "S2_SWIR": ("B11", "B12"),
    "ERA5": ("temperature_2m", "total_precipitation"),
    "SRTM": ("elevation", "slope"),
    "NDVI": ("NDVI",),
}
#: Presto's 17 input bands, in the order of its input's last axis.
BANDS: tuple[str, ...] = (
    "VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12",
    "temperature_2m", "total_precipitation", "elevation", "slope", "NDVI",
)  # fmt: skip
GROUP_INDEX = {g: [BANDS.index(b) for b in bands] for g, bands in GROUPS.items()}
STATIC = "SRTM"  # one token, not one per month
DW_CHANNEL = len(GROUPS)  # Dynamic World's row of the channel embedding
DW_MISSING = 9  # the Dynamic World class that means "no observation"
MONTHS = 12
EMBED = 128
MONTH_DIM, CHANNEL_DIM = 32, 32  # the rest (64) is the position
DEPTH, HEADS, MLP_RATIO, MAX_STEPS = 2, 8, 4, 24

#: The packaged encoder weights (``encoder.*`` tensors of the authors' model, unchanged; MIT
#: licence beside the file) and their SHA-256, checked on every read.
WEIGHTS = Path(__file__).resolve().parent / "weights" / "presto" / "presto-encoder.safetensors"
WEIGHTS_SHA256 = "d6e71beac7bf00acbc265147df1a01070d19aa1a131ab12dab6071375a48612d"
PREFIX = "encoder."
#: The fixed sinusoidal tables (positions, months): read from the weights file like the rest,
#: but never trained, so they are non-persistent buffers, left out of ``state_dict``: a model
#: rebuilt from its config (every adapted copy, every loaded bundle) reads them again.
FIXED = ("pos_embed", "month_embed.weight")


class Attention(nn.Module):
    """Multi-head self-attention whose masked keys get no weight (an additive −inf bias)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``x`` (sample, token, dim), ``bias`` (sample, token): 0 or −inf per key."""
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads) + bias[:, None, None, :]
        return self.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block (Dosovitskiy et al., 2021, ViT)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = LayerNorm(dim), LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class FixedTable(nn.Module):
    """A fixed lookup table ``weight``, like a frozen ``nn.Embedding`` (see :data:`FIXED`)."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(rows, dim), persistent=False)


def cartesian(lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
    """Degrees of latitude and longitude → points (..., 3) on the unit sphere, Presto's (and
    :func:`cropmeta.tasks.task_info.sphere_point`'s) location encoding."""
    phi, lam = torch.deg2rad(lat), torch.deg2rad(lon)
    return torch.stack([phi.cos() * lam.cos(), phi.cos() * lam.sin(), phi.sin()], dim=-1)


class Presto(nn.Module):
    """Presto's encoder; parameter names are those of the authors' ``encoder.*`` tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.eo_patch_embed = nn.ModuleDict(
            {g: nn.Linear(len(bands), EMBED) for g, bands in GROUPS.items()}
        )
        self.dw_embed = nn.Embedding(DW_MISSING + 1, EMBED)
        self.latlon_embed = nn.Linear(3, EMBED)
        self.blocks = nn.ModuleList(Block(EMBED, HEADS, MLP_RATIO) for _ in range(DEPTH))
        self.norm = LayerNorm(EMBED)
        position = EMBED - MONTH_DIM - CHANNEL_DIM
        self.register_buffer("pos_embed", torch.zeros(1, MAX_STEPS, position), persistent=False)
        self.month_embed = FixedTable(MONTHS, MONTH_DIM)
        self.channel_embed = nn.Embedding(len(GROUPS) + 1, CHANNEL_DIM)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        month: int | torch.Tensor = 0,
        location: torch.Tensor | None = None,
        dynamic_world: torch.Tensor | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> torch.Tensor:
        """The embedding (sample, 128) of normalised inputs ``x`` (sample, month, 17).

        ``mask`` (broadcast to ``x``'s shape, True = missing) drops a group's token in a month
        when any of its bands is missing; ``month`` (int, or one per sample) is the first
        step's month (0 = January); ``location`` (sample, 3) is :func:`cartesian`'s point, None
        the zero vector (see :func:`cropmeta.models.presto_inputs.presto_embeddings`);
        ``dynamic_world`` (sample, month) holds land-cover classes, None all missing; only the
        ``groups`` named (default: all) are embedded, the others count as masked.
        """
        n, steps = x.shape[:2]
        dev = x.device
        missing = torch.zeros_like(x, dtype=torch.bool) if mask is None else mask.expand_as(x)
        x = x.masked_fill(missing, 0.0)  # a missing value (NaN) must not reach any token
        months = torch.as_tensor(month, device=dev).reshape(-1, 1) + torch.arange(steps, device=dev)
        when = (
            self.month_embed.weight[months % MONTHS].expand(n, steps, MONTH_DIM),
            self.pos_embed[0, :steps].expand(n, steps, -1),
        )
        tokens = [self.latlon_embed(self._location(location, x))[:, None]]
        masked = [torch.zeros(n, 1, dtype=torch.bool, device=dev)]
        for g in groups or tuple(GROUPS):
            index, row = GROUP_INDEX[g], list(GROUPS).index(g)
            values, gone = x[..., index], missing[..., index].any(-1)
            if g == STATIC:  # one token: the first step's, without month or position
                values, gone, row = values[:, :1], gone[:, :1], -1
            extra = self._extra(when, row)[:, : values.shape[1]]
            tokens.append(self.eo_patch_embed[g](values) + extra)
            masked.append(gone)
        if dynamic_world is not None:
            tokens.append(self.dw_embed(dynamic_world) + self._extra(when, DW_CHANNEL))
            masked.append(dynamic_world == DW_MISSING)
        h, gone = torch.cat(tokens, dim=1), torch.cat(masked, dim=1)
        bias = torch.zeros(gone.shape, dtype=h.dtype, device=dev).masked_fill(gone, float("-inf"))
        for block in self.blocks:
            h = block(h, bias)
        keep = (~gone).unsqueeze(-1)
        return self.norm(torch.where(keep, h, 0.0).sum(1) / keep.sum(1))

    def _extra(self, when: tuple[torch.Tensor, torch.Tensor], row: int) -> torch.Tensor:
        """What a token adds to its value's embedding: [month | channel group ``row`` |
        position]; ``row`` −1 is the static group, whose month and position parts are zero."""
        month, position = when
        static = row < 0
        chan = self.channel_embed.weight[list(GROUPS).index(STATIC) if static else row]
        if static:
            month, position = torch.zeros_like(month), torch.zeros_like(position)
        return torch.cat([month, chan.expand(*month.shape[:-1], -1), position], dim=-1)

    @staticmethod
    def _location(location: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """One point (sample, 3) per sample of ``x``: the zero vector when unknown."""
        if location is None:
            return torch.zeros(len(x), 3, dtype=x.dtype, device=x.device)
        return location.to(x).reshape(-1, 3).expand(len(x), 3)


def read_weights(path: str | Path = WEIGHTS, expected: str = WEIGHTS_SHA256) -> dict:
    """Presto's encoder tensors (prefix ``encoder.`` removed) from ``path``, after checking its
    SHA-256 against ``expected``; an :class:`InputError` says what is wrong otherwise.

    Cached per file content (path, size, modification time): models are rebuilt often
    (every adapted copy), the file is read and hashed once. Callers copy the tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "Presto weights not found (reinstall cropmeta: they ship with it)")
    stat = p.stat()
    return _read(str(p), stat.st_size, stat.st_mtime_ns, expected)


@functools.lru_cache(maxsize=4)
def _read(path: str, size: int, mtime_ns: int, expected: str) -> dict[str, torch.Tensor]:
    if (found := sha256(path)) != expected:
        raise InputError(
            path,
            f"Presto weights damaged or replaced: SHA-256 {found[:12]}… is not the recorded "
            f"{expected[:12]}… (reinstall cropmeta)",
        )
    try:
        tensors = load_file(path, device="cpu")
    except Exception as exc:  # SafetensorError: a truncated header, another format
        raise InputError(path, f"unreadable Presto weights ({str(exc)[:80]})") from None
    return {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}


def load_presto(path: str | Path = WEIGHTS, expected: str = WEIGHTS_SHA256) -> Presto:
    """Presto with the pretrained weights (every encoder tensor, strictly; :data:`FIXED` into
    its buffers), in eval mode.

    Built on the meta device (a shape-only model, as the bundle's size check builds one), it
    reads no file.
    """
    model = Presto()
    if model.pos_embed.device.type != "meta":
        weights = read_weights(path, expected)
        model.load_state_dict({k: v for k, v in weights.items() if k not in FIXED})
        with torch.no_grad():
            for name in FIXED:
                model.get_buffer(name).copy_(weights[name])
    return model.eval()
