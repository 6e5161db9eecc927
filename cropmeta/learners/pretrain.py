"""What meta-training stores beside the meta-model for the baselines (:mod:`cropmeta.baselines`).

The supervised source classifier — the same architecture trained with plain cross-entropy on
every source sample at once, over the union of the sources' taxonomy codes (Chen et al., 2019,
"A Closer Look at Few-shot Classification", ICLR; Tian et al., 2020, "Rethinking Few-Shot Image
Classification: a Good Embedding Is All You Need?", ECCV) — is pre-trained during meta-training
on the meta-training split (the same normaliser, early-stopped on the held-out source split). It
is the start of ``init="pretrained"`` and of the transfer baselines. The bundle stores it as
``transfer.*`` tensors, with its class codes in the config, and a stratified sample of the source
series as ``sources.*`` tensors for the pooled baselines, so adaptation needs no source data.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from cropmeta.ingest.dataset import RegionArrays
from cropmeta.models.bundle import Bundle, BundleConfig, load_part
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig
from cropmeta.tasks.augment import RegionEffects
from cropmeta.tasks.episodes import LabelledSet

PART = "transfer"  # prefix of the pre-trained classifier's tensors in a meta-model bundle
SOURCES = "sources"  # prefix of the stored source samples in a meta-model bundle


class PretrainConfig(BaseModel):
    """Supervised pre-training on the pooled source samples (mini-batch Adam, early stopping)."""

    epochs: int = Field(30, ge=1, description="at most; stops earlier on the validation loss")
    patience: int = Field(4, ge=1, description="epochs without a better validation loss")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)


@dataclass
class Pretrained:
    """A source classifier and the taxonomy code of each of its head's rows."""

    model: CropClassifier
    codes: list[int]
    history: dict


def pretrain(
    train: list[LabelledSet],
    val: list[LabelledSet],
    doy: torch.Tensor,
    encoder: EncoderConfig,
    seed: int,
    cfg: PretrainConfig | None = None,
    effects: RegionEffects | None = None,
) -> Pretrained:
    """Train a classifier over the union of the sources' codes on every training sample.

    The weights with the lowest loss on ``val`` (held-out source samples of known classes) are
    kept. Runs under its own seeded RNG, so it is the same whatever learner is meta-trained
    beside it and leaves the caller's random state untouched. ``effects`` (simulated regions,
    :mod:`cropmeta.tasks.augment`) moves every training sample by its own draw, the supervised
    counterpart of the meta-learners' augmented tasks; validation samples stay as they are.
    """
    cfg = cfg or PretrainConfig()
    codes = sorted({int(c) for s in train for c in np.unique(s.codes)})
    x, y = _pool(train, codes)
    x_val, y_val = _pool(val, codes)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CropClassifier(x.shape[-1], x.shape[-2], encoder, len(codes))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best, best_state, waited, losses = float("inf"), None, 0, []
        for _ in range(cfg.epochs):
            model.train()
            for batch in torch.randperm(len(y)).split(cfg.batch_size):
                opt.zero_grad()
                xb = x[batch] if effects is None else _simulated(effects, x[batch], rng)
                F.cross_entropy(model(xb, doy), y[batch]).backward()
                opt.step()
            if not len(y_val):
                continue
            with torch.no_grad():
                loss = F.cross_entropy(model.eval()(x_val, doy), y_val).item()
            losses.append(round(loss, 5))
            if loss < best:
                best, best_state, waited = loss, copy.deepcopy(model.state_dict()), 0
            elif (waited := waited + 1) >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    history = {
        "val_loss": losses,
        "epochs": len(losses) or cfg.epochs,
        "seconds": round(time.perf_counter() - start, 2),
        "config": cfg.model_dump(),
    }
    return Pretrained(model.eval(), codes, history)


def _simulated(effects: RegionEffects, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Each sample of ``x`` from its own simulated region."""
    return torch.from_numpy(np.concatenate([effects(rng, s[None])[0] for s in x.numpy()]))


def _pool(sets: list[LabelledSet], codes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of every set whose code is in ``codes``, with labels as row indices of the head."""
    index = {c: i for i, c in enumerate(codes)}
    x = np.concatenate([s.x for s in sets])
    c = np.concatenate([s.codes for s in sets])
    keep = np.isin(c, codes)
    y = np.array([index[int(v)] for v in c[keep]], dtype=np.int64)
    return torch.from_numpy(x[keep]), torch.from_numpy(y)


def load_pretrained(model_dir: str | Path | Bundle, cfg: BundleConfig) -> Pretrained | None:
    """The source classifier stored in a meta-model bundle; None for bundles without one."""
    tensors = load_part(model_dir, PART)
    if not tensors or not cfg.transfer_classes:
        return None
    n_bands, n_steps = len(cfg.preparation.bands), len(cfg.preparation.grid)
    model = CropClassifier(n_bands, n_steps, cfg.encoder, len(cfg.transfer_classes))
    model.load_state_dict(tensors)
    return Pretrained(model.eval(), list(cfg.transfer_classes), {})


class SourceSamples(nn.Module):
    """The source regions' labelled series as buffers, so the bundle stores them as tensors:
    ``x`` (sample, step, band) as prepared (not standardised) and ``codes`` (taxonomy codes)."""

    def __init__(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("x", x)
        self.register_buffer("codes", codes)


def source_samples(regions: list[RegionArrays], limit: int, seed: int) -> SourceSamples:
    """Every sample of ``regions``, or a stratified random ``limit`` of them (each class keeps
    its share, at least one sample; seeded)."""
    x = np.concatenate([r.x for r in regions]).astype(np.float32)
    codes = np.concatenate([r.codes for r in regions]).astype(np.int64)
    if len(codes) > limit:
        rng = np.random.default_rng(seed)
        keep = []
        for c in np.unique(codes):
            members = np.flatnonzero(codes == c)
            quota = max(1, round(limit * len(members) / len(codes)))
            keep.append(rng.choice(members, size=min(quota, len(members)), replace=False))
        chosen = np.sort(np.concatenate(keep))
        x, codes = x[chosen], codes[chosen]
    return SourceSamples(torch.from_numpy(x), torch.from_numpy(codes))
