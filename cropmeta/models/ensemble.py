"""Several adapted models as one: the mean of their class probabilities.

Meta-validation ranks the learners, but on a shifted target region the first is often not the
best (docs/studies/simulated-regions-and-class-heads.md: ANIL chosen where ProtoNet, SNAIL or
Matching win). Averaging the probabilities of the few best-validated learners, each adapted on
the same labelled fields, is the classic remedy for an uncertain choice and for training noise
(deep ensembles, Lakshminarayanan et al., 2017; for few-shot learning, Dvornik et al., 2019,
"Diversity with Cooperation: Ensemble Methods for Few-Shot Classification", ICCV). The members
keep their own configs (head kinds, stored support sets) in the ensemble's config and their
weights under ``members.<i>.`` in one safetensors file, so an ensemble saves, loads and maps as
one model.
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
        ref_mean, ref_std = (torch.tensor(v, dtype=torch.float64) for v in _stats(normaliser))
        scale, shift = [], []  # per member and band: x_member = x * scale + shift
        for member in cfg.members:
            mean, std = (torch.tensor(v, dtype=torch.float64) for v in _stats(member["normaliser"]))
            scale.append(ref_std / std)
            shift.append((ref_mean - mean) / std)
        # not saved: the configs hold the statistics; buffers move with the model's device
        self.register_buffer("scale", torch.stack(scale).float(), persistent=False)
        self.register_buffer("shift", torch.stack(shift).float(), persistent=False)

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        members = enumerate(self.members)
        return mean_log_probability(
            [m(x * self.scale[i] + self.shift[i], doy).softmax(-1) for i, m in members]
        )


def _stats(normaliser: Normaliser | dict) -> tuple[list[float], list[float]]:
    n = Normaliser.model_validate(normaliser) if isinstance(normaliser, dict) else normaliser
    return n.mean, n.std


def mean_log_probability(probabilities: list[torch.Tensor]) -> torch.Tensor:
    """The log of the mean of the members' class probabilities (sample, class): the ensemble's
    output, computed the same way wherever it is scored."""
    return torch.stack(probabilities).mean(0).log()
