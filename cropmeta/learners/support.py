"""Learners that adapt by reading the support set: metric (Matching, Relation) and model-based.

They share everything but their head (:mod:`cropmeta.models.heads`) and, for Relation Networks,
the query loss. Meta-training encodes each task's support set and lets the head read it while
classifying the queries; adaptation takes no gradient step: the head stores what it reads of the
region's support set (embeddings, prototypes or tokens) as buffers, saved with the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch.func import functional_call

from cropmeta.learners.base import Learner
from cropmeta.learners.inner_loop import accuracy
from cropmeta.learners.task_map import over_tasks
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.heads import SupportHeadConfig, build_head


class SupportLearner(Learner):
    """Meta-trains an encoder and a support-reading head end to end on episodes.

    ``cfg.head`` is the head's config; :meth:`setup` gives the model that head (replacing the
    default linear one) so that its meta-learned weights are optimised and saved with the model.
    """

    cfg: BaseModel

    def setup(self, model: CropClassifier) -> None:
        wanted: SupportHeadConfig = self.cfg.head
        have = model.head.cfg
        if have.kind != wanted.kind or have.model_copy(update={"memory": {}}) != wanted:
            ref = next(model.encoder.parameters())
            model.head = build_head(wanted, model.shape[2].embed, 1).to(ref)

    def query_loss(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of the head's query scores (cross-entropy unless a learner says otherwise)."""
        return F.cross_entropy(scores, y)

    def meta_loss(self, model, batch, doy):
        n_way = int(batch.y_s.max()) + 1

        def one_task(params, x_s, y_s, x_q, y_q):
            support = (x_s, F.one_hot(y_s, n_way).to(x_s.dtype))
            scores = functional_call(model, params, (x_q, doy, support))
            return self.query_loss(scores, y_q), accuracy(scores, y_q)

        losses, accs = over_tasks(model, one_task, batch, dict(model.named_parameters()))
        return losses.mean(), accs.mean()

    def adapt(self, model, x, y, doy, n_classes, info=None, codes=None):
        with torch.no_grad():
            emb = model.encoder(x, doy)
            memory = model.head.memory(emb, F.one_hot(y, n_classes).to(emb.dtype))
        return model.with_memory(memory, n_classes)
