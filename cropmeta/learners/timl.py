"""TIML: MAML whose embedding is modulated by a hypernetwork reading the task's information.

Tseng, Kerner & Rolnick (2022), "TIML: Task-Informed Meta-Learning for Agriculture",
arXiv:2202.02124. A task encoder maps what is known about a task (here its region's location,
:mod:`cropmeta.tasks.task_info`) to a FiLM modulation (γ, β) of the classifier's hidden
features; the inner loop adapts the classifier as MAML does, under that fixed modulation, and
the task encoder is trained by the outer loss only. Here the modulated features are the
embedding the head reads: logits = W (γ ⊙ e + β) + b. Since this is linear in e it folds into
the head, W' = W diag(γ), b' = W β + b, so an adapted model is an ordinary
:class:`CropClassifier` and maps like any other.

Departures from the paper: one FiLM layer (before the head) instead of one per hidden layer; the
task encoder is a two-layer MLP whose last layer starts at zero (γ = 1, β = 0: TIML starts as
MAML); no crop-type task information (a task here has several classes) and no task removal.
Tasks without information (synthetic tasks, a dataset without coordinates) get a zero vector.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.func import functional_call

from cropmeta.learners.base import GradientConfig, GradientLearner
from cropmeta.learners.inner_loop import Params, accuracy
from cropmeta.learners.task_map import over_tasks
from cropmeta.models.classifier import CropClassifier
from cropmeta.tasks.task_info import INFO_DIM

FILM = ("film_gamma", "film_beta")


class TIMLConfig(GradientConfig):
    name: Literal["timl"] = "timl"
    hidden: int = Field(32, ge=1, description="width of the task encoder")


class FiLMClassifier(nn.Module):
    """``model``'s encoder and head with a FiLM of the embedding between them.

    Shares the model's modules (same parameter names); γ and β are buffers, passed per task
    to :func:`functional_call` alongside the parameters.
    """

    def __init__(self, model: CropClassifier) -> None:
        super().__init__()
        self.encoder, self.head = model.encoder, model.head
        embed = model.head.in_features
        self.register_buffer(FILM[0], torch.ones(embed))
        self.register_buffer(FILM[1], torch.zeros(embed))

    def forward(self, x: torch.Tensor, doy: torch.Tensor, embedding: bool = False) -> torch.Tensor:
        emb = self.encoder(x, doy) * self.film_gamma + self.film_beta
        return emb if embedding else self.head(emb)


def fold_film(params: Params) -> Params:
    """Parameters of a plain classifier equal to FiLM-then-head: W diag(γ), W β + b."""
    out = {k: v for k, v in params.items() if k not in FILM}
    weight, gamma, beta = params["head.weight"], params[FILM[0]], params[FILM[1]]
    out["head.weight"] = weight * gamma
    out["head.bias"] = weight @ beta + params["head.bias"]
    return out


class TIML(GradientLearner):
    name = "timl"
    cfg: TIMLConfig

    def setup(self, model: CropClassifier) -> None:
        super().setup(model)
        first = nn.Linear(INFO_DIM, self.cfg.hidden)
        embed = model.head.in_features
        self.state.update(
            {
                "w0": nn.Parameter(first.weight.detach().clone()),
                "b0": nn.Parameter(first.bias.detach().clone()),
                "w1": nn.Parameter(torch.zeros(2 * embed, self.cfg.hidden)),
                "b1": nn.Parameter(torch.zeros(2 * embed)),
            }
        )

    def modulation(self, info: torch.Tensor | None) -> Params:
        """FiLM (γ, β) of one task's information (None: no information, a zero vector)."""
        s = self.state
        info = s["b0"].new_zeros(INFO_DIM) if info is None else info.to(s["b0"])
        hidden = F.gelu(F.linear(info, s["w0"], s["b0"]))
        d_gamma, beta = F.linear(hidden, s["w1"], s["b1"]).chunk(2)
        return {FILM[0]: 1 + d_gamma, FILM[1]: beta}

    def inner_keys(self, params: Params) -> tuple[str, ...]:
        return tuple(k for k in params if k not in FILM)  # the modulation stays fixed

    def meta_loss(self, model, batch, doy):
        n_way, film = int(batch.y_s.max()) + 1, FiLMClassifier(model)
        info = batch.x_s.new_zeros(len(batch.x_s), INFO_DIM) if batch.info is None else batch.info

        codes = batch.codes
        if codes is None:  # class heads then start every label at the rows' mean
            codes = batch.y_s.new_full((len(batch.x_s), n_way), -1)

        def one_task(params: Params, x_s, y_s, x_q, y_q, z, c):
            start = {**params, **self.modulation(z)}
            fast = self.adapted_params(film, x_s, y_s, doy, n_way, start, codes=c)
            logits = functional_call(film, fast, (x_q, doy))
            return F.cross_entropy(logits, y_q), accuracy(logits, y_q)

        params = dict(model.named_parameters())
        losses, accs = over_tasks(model, one_task, batch, params, per_task=(info, codes))
        return losses.mean(), accs.mean()

    def adapt(self, model, x, y, doy, n_classes, info=None, codes=None):
        start = {k: v.detach() for k, v in model.named_parameters()}
        with torch.no_grad():
            start |= self.modulation(info)
        steps, lr, film = self.cfg.adapt_steps, self.cfg.adaptation_lr, FiLMClassifier(model)
        fast = self.adapted_params(film, x, y, doy, n_classes, start, steps, lr, True, True, codes)
        return model.with_params(fold_film(fast), n_classes)
