"""Transfer learning: a source classifier pre-trained with plain cross-entropy, then fine-tuned.

The baseline every few-shot method must beat (Chen et al., 2019, "A Closer Look at Few-shot
Classification", ICLR; Tian et al., 2020, "Rethinking Few-Shot Image Classification: a Good
Embedding Is All You Need?", ECCV; for land cover, Rußwurm et al., 2020, "Meta-Learning for
Few-Shot Land Cover Classification", CVPR-W): the same architecture trained on every source
sample at once, over the union of the sources' taxonomy codes. It is pre-trained during
meta-training on the meta-training split (the same normaliser, early-stopped on the held-out
source split) and stored inside the meta-model bundle as ``transfer.*`` tensors, with its class
codes in the config, so adaptation needs no source data.

At adaptation it gives three methods, all fitted on the meta-learner's support set:
``source_only`` (no adaptation; classes the sources never saw cannot be predicted),
``transfer_head`` (a linear probe: the encoder stays frozen) and ``transfer_all`` (all layers,
after the probe: "LP-FT", Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution", ICLR — a fresh head's random gradients would otherwise
disturb the pre-trained encoder).
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

from cropmeta.models.bundle import BundleConfig, load_part
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.fit import fit_on_shots
from cropmeta.tasks.augment import RegionEffects
from cropmeta.tasks.episodes import LabelledSet

PART = "transfer"  # prefix of the pre-trained classifier's tensors in a meta-model bundle


class PretrainConfig(BaseModel):
    """Supervised pre-training on the pooled source samples (mini-batch Adam, early stopping)."""

    epochs: int = Field(30, ge=1, description="at most; stops earlier on the validation loss")
    patience: int = Field(4, ge=1, description="epochs without a better validation loss")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)


class FineTuneConfig(BaseModel):
    """Full-batch Adam on the support set: the probe, then (``transfer_all``) every layer."""

    head_steps: int = Field(100, ge=1)
    head_lr: float = Field(1e-2, gt=0)
    all_steps: int = Field(50, ge=1)
    all_lr: float = Field(1e-4, gt=0, description="small: the encoder starts from good features")
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


def load_pretrained(model_dir: str | Path, cfg: BundleConfig) -> Pretrained | None:
    """The source classifier stored in a meta-model bundle; None for bundles without one."""
    tensors = load_part(model_dir, PART)
    if not tensors or not cfg.transfer_classes:
        return None
    n_bands, n_steps = len(cfg.preparation.bands), len(cfg.preparation.grid)
    model = CropClassifier(n_bands, n_steps, cfg.encoder, len(cfg.transfer_classes))
    model.load_state_dict(tensors)
    return Pretrained(model.eval(), list(cfg.transfer_classes), {})


def known_mask(pre: Pretrained, target_codes: list[int]) -> np.ndarray:
    """Which target classes (in the target's order) the sources know."""
    return np.array([c in pre.codes for c in target_codes], dtype=bool)


def target_head(
    pre: Pretrained, target_codes: list[int], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A head over the target's classes: the pre-trained row where the sources know the class,
    else a freshly initialised one (``nn.Linear``'s default initialisation, seeded)."""
    rows = {c: i for i, c in enumerate(pre.codes)}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fresh = torch.nn.Linear(pre.model.head.in_features, len(target_codes))
    weight, bias = fresh.weight.detach().clone(), fresh.bias.detach().clone()
    for i, c in enumerate(target_codes):
        if c in rows:
            weight[i] = pre.model.head.weight[rows[c]].detach()
            bias[i] = pre.model.head.bias[rows[c]].detach()
    return weight, bias


def _with_head(pre: Pretrained, weight: torch.Tensor, bias: torch.Tensor) -> CropClassifier:
    params = {k: v for k, v in pre.model.state_dict().items() if not k.startswith("head.")}
    return pre.model.with_params({**params, "head.weight": weight, "head.bias": bias}, len(weight))


def source_only(pre: Pretrained, target_codes: list[int]) -> CropClassifier:
    """The source classifier's logits restricted to the target's classes; a class the sources
    never saw gets a logit of −∞, so it is never predicted."""
    weight, bias = target_head(pre, target_codes, seed=0)
    unknown = torch.from_numpy(~known_mask(pre, target_codes))
    weight[unknown] = 0.0
    bias[unknown] = float("-inf")
    return _with_head(pre, weight, bias)


def fine_tune_head(
    pre: Pretrained,
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    target_codes: list[int],
    seed: int,
    cfg: FineTuneConfig | None = None,
    sample_weight: torch.Tensor | None = None,
) -> CropClassifier:
    """A linear probe: the head over the target's classes fitted on the support set (x, y;
    each sample weighted by ``sample_weight`` when given); the pre-trained encoder is left
    exactly as it is."""
    cfg = cfg or FineTuneConfig()
    weight, bias = target_head(pre, target_codes, seed)
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict({"weight": weight, "bias": bias})
    with torch.no_grad():
        emb = pre.model.encoder(x, doy)
    fit_on_shots(
        head, lambda: head(emb), y, cfg.head_steps, cfg.head_lr, cfg.weight_decay, sample_weight
    )
    return _with_head(pre, head.weight.detach(), head.bias.detach())


def fine_tune_all(
    pre: Pretrained,
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    target_codes: list[int],
    seed: int,
    cfg: FineTuneConfig | None = None,
    sample_weight: torch.Tensor | None = None,
) -> CropClassifier:
    """Every layer fine-tuned on the support set, starting from the linear probe (LP-FT)."""
    cfg = cfg or FineTuneConfig()
    model = fine_tune_head(pre, x, y, doy, target_codes, seed, cfg, sample_weight)
    return fit_on_shots(
        model,
        lambda: model(x, doy),
        y,
        cfg.all_steps,
        cfg.all_lr,
        cfg.weight_decay,
        sample_weight,
    )
