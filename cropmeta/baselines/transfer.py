"""Transfer learning: a source classifier pre-trained with plain cross-entropy, then fine-tuned.

The baseline every few-shot method must beat (Chen et al., 2019, "A Closer Look at Few-shot
Classification", ICLR; Tian et al., 2020, "Rethinking Few-Shot Image Classification: a Good
Embedding Is All You Need?", ECCV; for land cover, Rußwurm et al., 2020, "Meta-Learning for
Few-Shot Land Cover Classification", CVPR-W): the same architecture trained on every source
sample at once, over the union of the sources' taxonomy codes. Meta-training pre-trains it
and stores it in the meta-model bundle (:mod:`cropmeta.learners.pretrain`), so adaptation needs
no source data.

At adaptation it gives three methods, all fitted on the meta-learner's support set:
``source_only`` (no adaptation; classes the sources never saw cannot be predicted),
``transfer_head`` (a linear probe: the encoder stays frozen) and ``transfer_all`` (all layers,
after the probe: "LP-FT", Kumar et al., 2022, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution", ICLR — a fresh head's random gradients would otherwise
disturb the pre-trained encoder).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, Field

from cropmeta.learners.pretrain import Pretrained
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.fit import fit_on_shots


class FineTuneConfig(BaseModel):
    """Full-batch Adam on the support set: the probe, then (``transfer_all``) every layer."""

    head_steps: int = Field(100, ge=1)
    head_lr: float = Field(1e-2, gt=0)
    all_steps: int = Field(50, ge=1)
    all_lr: float = Field(1e-4, gt=0, description="small: the encoder starts from good features")
    weight_decay: float = Field(1e-4, ge=0)


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
