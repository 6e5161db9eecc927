"""Meta-SGD: meta-learn a learning rate for every parameter entry, besides the initialisation.

Li, Zhou, Chen & Li (2017), "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning",
arXiv:1707.09835. The inner update is θ − α ∘ ∇L with α a tensor like θ, trained by the outer
loss together with θ; the rates travel in the checkpoint.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from cropmeta.learners.base import GradientConfig, GradientLearner
from cropmeta.learners.inner_loop import Params
from cropmeta.models.classifier import CropClassifier


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys may not contain dots


class MetaSGDConfig(GradientConfig):
    name: Literal["metasgd"] = "metasgd"


class MetaSGD(GradientLearner):
    name = "metasgd"

    def setup(self, model: CropClassifier) -> None:
        super().setup(model)
        self.names = [n for n, _ in model.named_parameters()]
        self.state.update(
            {
                _key(n): nn.Parameter(torch.full_like(p, self.cfg.inner_lr))
                for n, p in model.named_parameters()
            }
        )

    def inner_lr(self, scale: float = 1.0) -> Params:
        return {n: self.state[_key(n)] * scale for n in self.names}
