"""Several adapted models as one: the mean of their class probabilities.

Meta-validation ranks the learners, but on a shifted target region the first is often not the
best (BENCHMARKS.md: ANIL chosen where ProtoNet, SNAIL or Matching win). Averaging the
probabilities of the few best-validated learners, each adapted on the same labelled fields, is
the classic remedy for an uncertain choice and for training noise (deep ensembles,
Lakshminarayanan et al., 2017; for few-shot learning, Dvornik et al., 2019, "Diversity with
Cooperation: Ensemble Methods for Few-Shot Classification", ICCV). The members keep their own
configs (head kinds, stored support sets) in the ensemble's config and their weights under
``members.<i>.`` in one safetensors file, so an ensemble saves, loads and maps as one model.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, Field
from torch import nn

from cropmeta.ingest.prepare import Normaliser


class EnsembleHeadConfig(BaseModel):
    """An ensemble as the whole model: the bundle's ``encoder`` is not used, each member's own
    config (a :class:`cropmeta.models.bundle.BundleConfig` as JSON) says what it is."""

    kind: Literal["ensemble"] = "ensemble"
    members: list[dict] = Field(default_factory=list, description="each member's bundle config")
    names: list[str] = Field(default_factory=list, description="each member's method")


class EnsembleClassifier(nn.Module):
    """``model(x, doy)`` gives the log of the members' mean class probabilities.

    ``x`` comes standardised with ``normaliser`` (the bundle's, the first member's); a member
    meta-trained with other statistics (another seed's source split) gets it restandardised
    with its own, as when it adapted.
    """

    def __init__(
        self, cfg: EnsembleHeadConfig, members: list[nn.Module], normaliser: Normaliser
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList(members)
        self.rescale = []  # per member: (scale, shift) per band, x_member = x * scale + shift
        for member in cfg.members:
            own = Normaliser.model_validate(member["normaliser"])
            mean, std = (torch.tensor(v, dtype=torch.float64) for v in (own.mean, own.std))
            mean0, std0 = (
                torch.tensor(v, dtype=torch.float64) for v in (normaliser.mean, normaliser.std)
            )
            self.rescale.append(((std0 / std).float(), ((mean0 - mean) / std).float()))

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        pairs = zip(self.members, self.rescale, strict=True)
        return mean_log_probability([m(x * a + b, doy).softmax(-1) for m, (a, b) in pairs])


def mean_log_probability(probabilities: list[torch.Tensor]) -> torch.Tensor:
    """The log of the mean of the members' class probabilities (sample, class): the ensemble's
    output, computed the same way wherever it is scored."""
    return torch.stack(probabilities).mean(0).log()
