"""A model-based learner after SNAIL: adapting is reading the support set with attention.

Mishra, Rohaninejad, Chen & Abbeel (2018), "A Simple Neural Attentive Meta-Learner", ICLR;
in the line of memory-augmented networks (Santoro et al., 2016, "Meta-Learning with
Memory-Augmented Neural Networks", ICML). The episode is a sequence of tokens [f(s_i), label
token of y_i] followed by the query token [f(q), 0]; attention layers let the query read the
support tokens, and its output is compared with each class's label token
(:class:`SnailHead`). No gradient step is taken at adaptation: the support tokens are stored.

Label tokens must fit any number of target classes, so they are not a fixed table of N
embeddings (SNAIL's one-hot labels fix N) nor random per-task codes (which would make an
adapted model depend on a random draw): the label token of a class is its prototype, the mean
support embedding (Snell et al., 2017), which is also indifferent to how labels are numbered.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cropmeta.learners.support import SupportLearner
from cropmeta.models.heads import SnailHeadConfig


class SnailConfig(BaseModel):
    name: Literal["snail"] = "snail"
    head: SnailHeadConfig = Field(default_factory=SnailHeadConfig)


class Snail(SupportLearner):
    name = "snail"
    cfg: SnailConfig
