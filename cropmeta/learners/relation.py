"""Relation Networks: a learnt relation module scores each (class prototype, query) pair.

Sung, Yang, Zhang, Xiang, Torr & Hospedales (2018), "Learning to Compare: Relation Network for
Few-Shot Learning", CVPR. The support embeddings of a class are pooled into a prototype (the
paper sums them for K-shot; the mean keeps the scale independent of K) and g([p_c, f(q)])
scores the pair (:class:`RelationHead`).

The paper regresses sigmoid scores onto the one-hot target with a mean squared error, reading
the score as a similarity rather than a probability. Cross-entropy on the raw scores is the
default here: it gives the same argmax, trains faster from the few meta-iterations affordable
on a CPU, and treats every class's score jointly like the other learners' losses; ``loss="mse"``
is the paper's choice.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from cropmeta.learners.support import SupportLearner
from cropmeta.models.heads import RelationHeadConfig


class RelationConfig(BaseModel):
    name: Literal["relation"] = "relation"
    head: RelationHeadConfig = Field(default_factory=RelationHeadConfig)
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"


class RelationNet(SupportLearner):
    name = "relation"
    cfg: RelationConfig

    def query_loss(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "mse":
            target = F.one_hot(y, scores.shape[-1]).to(scores.dtype)
            return F.mse_loss(torch.sigmoid(scores), target)
        return F.cross_entropy(scores, y)
