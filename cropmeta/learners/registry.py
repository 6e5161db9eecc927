"""Learners by name, with their typed configs."""

from __future__ import annotations

from pydantic import BaseModel

from cropmeta.learners.alfa import ALFA, ALFAConfig
from cropmeta.learners.anil import ANIL, ANILConfig
from cropmeta.learners.base import Learner
from cropmeta.learners.maml import FOMAML, MAML, FOMAMLConfig, MAMLConfig
from cropmeta.learners.matching import MatchingConfig, MatchingNet
from cropmeta.learners.metasgd import MetaSGD, MetaSGDConfig
from cropmeta.learners.protonet import ProtoNet, ProtoNetConfig
from cropmeta.learners.relation import RelationConfig, RelationNet
from cropmeta.learners.reptile import Reptile, ReptileConfig
from cropmeta.learners.snail import Snail, SnailConfig
from cropmeta.learners.timl import TIML, TIMLConfig

LEARNERS: dict[str, tuple[type[Learner], type[BaseModel]]] = {
    "maml": (MAML, MAMLConfig),
    "fomaml": (FOMAML, FOMAMLConfig),
    "anil": (ANIL, ANILConfig),
    "metasgd": (MetaSGD, MetaSGDConfig),
    "reptile": (Reptile, ReptileConfig),
    "protonet": (ProtoNet, ProtoNetConfig),
    "matching": (MatchingNet, MatchingConfig),
    "relation": (RelationNet, RelationConfig),
    "snail": (Snail, SnailConfig),
    "alfa": (ALFA, ALFAConfig),
    "timl": (TIML, TIMLConfig),
}


def build_learner(name: str, settings: dict | None = None) -> Learner:
    """The learner ``name`` with its settings (unknown keys, such as ``algorithm``, ignored)."""
    if name not in LEARNERS:
        raise ValueError(f"unknown algorithm {name!r} (known: {', '.join(LEARNERS)})")
    cls, cfg = LEARNERS[name]
    fields = {k: v for k, v in (settings or {}).items() if k in cfg.model_fields and k != "name"}
    return cls(cfg.model_validate(fields))
