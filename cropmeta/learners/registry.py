"""Learners by name, with their typed configs."""

from __future__ import annotations

from cropmeta.learners.base import Learner
from cropmeta.learners.maml import MAML, MAMLConfig

LEARNERS: dict[str, tuple[type[Learner], type]] = {"maml": (MAML, MAMLConfig)}


def build_learner(name: str, settings: dict | None = None) -> Learner:
    if name not in LEARNERS:
        raise ValueError(f"unknown algorithm {name!r} (known: {', '.join(LEARNERS)})")
    cls, cfg = LEARNERS[name]
    return cls(cfg.model_validate({"name": name, **(settings or {})}))
