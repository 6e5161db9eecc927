"""Matching Networks: classify a query by attention over the labelled support samples.

Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra (2016), "Matching Networks for One Shot
Learning", NeurIPS. P(c | q) = Σ_i softmax_i(τ · cos(f(q), g(s_i))) y_ic, with f = g the
temporal encoder and τ a learnt (or fixed) inverse temperature (:class:`MatchingHead`). The
paper's full-context embeddings (a bidirectional LSTM over the support set and an attention
LSTM for the query) are left out: they make the embedding depend on the order of the support
set and were reported to help little beyond a good encoder; the SNAIL learner covers reading
the support set with a learnt model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cropmeta.learners.support import SupportLearner
from cropmeta.models.heads import MatchingHeadConfig


class MatchingConfig(BaseModel):
    name: Literal["matching"] = "matching"
    head: MatchingHeadConfig = Field(default_factory=MatchingHeadConfig)


class MatchingNet(SupportLearner):
    name = "matching"
    cfg: MatchingConfig
