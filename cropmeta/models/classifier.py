"""The any-way crop classifier: a temporal encoder and a linear head over the task's classes."""

from __future__ import annotations

import torch
from torch import nn

from cropmeta.models.encoders import EncoderConfig, build_encoder


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
        self.encoder = build_encoder(cfg, n_bands, n_steps)
        self.head = nn.Linear(cfg.embed, n_classes)

    def with_params(self, params: dict[str, torch.Tensor], n_classes: int) -> CropClassifier:
        """A new classifier (in eval mode) holding ``params``, with an ``n_classes`` head."""
        out = CropClassifier(*self.shape, n_classes=n_classes)
        out.load_state_dict({k: v.detach().clone() for k, v in params.items()})
        return out.eval()

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x, doy))
