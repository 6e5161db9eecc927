"""The any-way crop classifier: a temporal encoder and a head over the task's classes."""

from __future__ import annotations

import torch
from torch import nn

from cropmeta.models.encoder_registry import build_encoder
from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.heads import HeadConfig, LinearHeadConfig, Memory, build_head


class CropClassifier(nn.Module):
    """Encoder plus a head over the classes of one task or region.

    A meta-learned model has a one-row linear head that the learners copy to every class of a
    task (the "zero trick" of Ye & Chao, 2022, "How to Train Your MAML to Excel in Few-Shot
    Classification", ICLR): the head is then indifferent to how a task's labels are numbered and
    fits any number of classes, so a target region may have more or other classes than a task.
    Metric and model-based learners use a head that reads a support set instead
    (:mod:`cropmeta.models.heads`); ``head.cfg`` says which, and is saved with the model.
    """

    def __init__(
        self,
        n_bands: int,
        n_steps: int,
        cfg: EncoderConfig,
        n_classes: int = 1,
        head: HeadConfig | None = None,
    ) -> None:
        super().__init__()
        self.shape = (n_bands, n_steps, cfg)
        self.encoder = build_encoder(cfg, n_bands, n_steps)
        self.head = build_head(head or LinearHeadConfig(), cfg.embed, n_classes)

    def with_params(
        self, params: dict[str, torch.Tensor], n_classes: int, head: HeadConfig | None = None
    ) -> CropClassifier:
        """A new classifier (in eval mode) holding ``params``, with an ``n_classes`` head.

        ``head`` defaults to this model's head config.
        """
        out = CropClassifier(*self.shape, n_classes=n_classes, head=head or self.head.cfg)
        out.load_state_dict({k: v.detach().clone() for k, v in params.items()})
        return out.eval()

    def with_memory(self, memory: Memory, n_classes: int) -> CropClassifier:
        """A copy whose support-reading head stores ``memory`` (its own former memory dropped)."""
        old = self.head.cfg.memory
        head = self.head.cfg.model_copy(
            update={"memory": {k: list(v.shape) for k, v in memory.items()}}
        )
        state = {
            k: v
            for k, v in self.state_dict().items()
            if not (k.startswith("head.") and k[len("head.") :] in old)
        }
        state |= {f"head.{k}": v for k, v in memory.items()}
        return self.with_params(state, n_classes, head)

    def forward(
        self,
        x: torch.Tensor,
        doy: torch.Tensor,
        support: tuple[torch.Tensor, torch.Tensor] | None = None,
        embedding: bool = False,
    ) -> torch.Tensor:
        """Scores (sample, class) of series ``x``; ``support`` (series, one-hot labels) is read
        by a support-reading head instead of its stored memory (meta-training). ``embedding``:
        the features the head reads instead of scores."""
        emb = self.encoder(x, doy)
        if embedding:
            return emb
        if support is None:
            return self.head(emb)
        return self.head(emb, (self.encoder(support[0], doy), support[1]))
