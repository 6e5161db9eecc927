"""Prototypical networks: classify by distance to each class's mean embedding.

Snell, Swersky & Zemel (2017), "Prototypical Networks for Few-shot Learning", NeurIPS. With
squared Euclidean distance the classifier is linear in the embedding — logit_c = 2 p_c·e − |p_c|²
(the |e|² term is the same for every class) — so the adapted model is an ordinary
:class:`CropClassifier` whose head holds the prototypes, and maps like any other.
``fine_tune_steps`` then fine-tunes every layer on the support set, starting from that head —
the "fine-tune" stage of Hu, Li, Stühmer, Kim & Hospedales (2022), "Pushing the Limits of Simple
Pipelines for Few-Shot Learning: External Data and Fine-Tuning Make a Difference" (P>M>F), CVPR.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch.func import functional_call

from cropmeta.learners.base import Learner
from cropmeta.learners.inner_loop import accuracy
from cropmeta.learners.task_map import over_tasks
from cropmeta.models.fit import fit_on_shots
from cropmeta.models.heads import prototype_head


class ProtoNetConfig(BaseModel):
    name: Literal["protonet"] = "protonet"
    fine_tune_steps: int = Field(
        0,
        ge=0,
        description="Adam steps fine-tuning every layer on the support set after the "
        "prototypes are set (P>M>F: Hu et al., 2022, CVPR); 0: prototypes only",
    )
    fine_tune_lr: float = Field(1e-4, gt=0)


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

    def adapt(self, model, x, y, doy, n_classes, info=None, codes=None):
        with torch.no_grad():
            weight, bias = prototype_head(model.encoder(x, doy), y, n_classes)
        params = {k: v.detach() for k, v in model.named_parameters()}
        params.update({"head.weight": weight, "head.bias": bias})
        adapted = model.with_params(params, n_classes)
        if self.cfg.fine_tune_steps:
            steps, lr = self.cfg.fine_tune_steps, self.cfg.fine_tune_lr
            fit_on_shots(adapted, lambda: adapted(x, doy), y, steps, lr, weight_decay=0.0)
        return adapted
