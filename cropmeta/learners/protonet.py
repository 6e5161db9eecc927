"""Prototypical networks: classify by distance to each class's mean embedding.

Snell, Swersky & Zemel (2017), "Prototypical Networks for Few-shot Learning", NeurIPS. With
squared Euclidean distance the classifier is linear in the embedding — logit_c = 2 p_c·e − |p_c|²
(the |e|² term is the same for every class) — so the adapted model is an ordinary
:class:`CropClassifier` whose head holds the prototypes, and maps like any other.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch.func import functional_call

from cropmeta.learners.base import Learner, accuracy, over_tasks
from cropmeta.models.heads import class_means


class ProtoNetConfig(BaseModel):
    name: Literal["protonet"] = "protonet"


def prototype_head(emb: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple:
    """Linear head (weight, bias) equivalent to nearest-prototype with squared distance."""
    protos = class_means(emb, F.one_hot(y, n_classes).to(emb.dtype))
    return 2 * protos, -(protos**2).sum(1)


class ProtoNet(Learner):
    name = "protonet"

    def meta_loss(self, model, batch, doy):
        n_way = int(batch.y_s.max()) + 1
        enc = {
            k[len("encoder.") :]: v for k, v in model.named_parameters() if k.startswith("encoder.")
        }

        def one_task(params, x_s, y_s, x_q, y_q):
            weight, bias = prototype_head(
                functional_call(model.encoder, params, (x_s, doy)), y_s, n_way
            )
            logits = functional_call(model.encoder, params, (x_q, doy)) @ weight.T + bias
            return F.cross_entropy(logits, y_q), accuracy(logits, y_q)

        losses, accs = over_tasks(model, one_task, batch, enc)
        return losses.mean(), accs.mean()

    def adapt(self, model, x, y, doy, n_classes, info=None):
        with torch.no_grad():
            weight, bias = prototype_head(model.encoder(x, doy), y, n_classes)
        params = {k: v.detach() for k, v in model.named_parameters()}
        params.update({"head.weight": weight, "head.bias": bias})
        return model.with_params(params, n_classes)
