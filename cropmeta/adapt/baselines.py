"""Honest baselines trained on exactly the support set the meta-learner adapts on."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.ensemble import RandomForestClassifier

from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig


def from_scratch(
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    n_classes: int,
    encoder: EncoderConfig,
    seed: int,
    epochs: int = 150,
    lr: float = 1e-3,
) -> CropClassifier:
    """The same architecture, randomly initialised, trained with Adam on the shots alone."""
    torch.manual_seed(seed)
    model = CropClassifier(x.shape[-1], x.shape[-2], encoder, n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(model(x, doy), y).backward()
        opt.step()
    return model.eval()


def random_forest(x: np.ndarray, y: np.ndarray, seed: int) -> RandomForestClassifier:
    """A random forest on the flattened series — the workhorse of operational crop mapping."""
    rf = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)
    return rf.fit(x.reshape(len(x), -1), y)
