"""Learners by name, with their typed configs."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from cropmeta.errors import InputError
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
    return cls(cfg.model_validate(own_settings(name, settings or {})))


def recorded_learner(settings: dict, where: str | Path) -> Learner:
    """The learner a model's config records (``settings``, with its ``algorithm``), or an
    :class:`InputError` naming the config ``where`` when it names no known learner or holds an
    invalid setting."""
    name = settings.get("algorithm")
    if name not in LEARNERS:
        raise InputError(where, f"unknown algorithm {name!r} (known: {', '.join(LEARNERS)})")
    try:
        return build_learner(name, settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        where_in = ".".join(str(x) for x in first["loc"])
        raise InputError(where, f"invalid {name} setting {where_in}: {first['msg']}") from None


def own_settings(name: str, settings: dict) -> dict:
    """The part of ``settings`` that is the learner ``name``'s (its config's fields)."""
    fields = LEARNERS[name][1].model_fields
    return {k: v for k, v in settings.items() if k in fields and k != "name"}


def learner_settings(algorithms: list[str], pairs: list[str]) -> dict:
    """The learner settings ``KEY=VALUE`` (VALUE read as JSON, else as text) for the learners
    ``algorithms``: every key must be a setting of at least one of them and its value valid
    there; a learner without the setting ignores it (see :func:`build_learner`)."""
    settings: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{pair!r}: expected KEY=VALUE")
        try:
            settings[key] = json.loads(text)
        except json.JSONDecodeError:
            settings[key] = text
    for key, value in settings.items():
        owners = [a for a in algorithms if own_settings(a, {key: value})]
        if not owners:
            known = sorted({k for a in algorithms for k in LEARNERS[a][1].model_fields} - {"name"})
            raise ValueError(
                f"{key!r} is no setting of {', '.join(algorithms)} (known: {', '.join(known)})"
            )
        for name in owners:
            try:
                LEARNERS[name][1].model_validate({key: value})
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"]
                raise ValueError(f"{key}={value!r} for {name}: {reason}") from None
    return settings


#: the settings that act only when adapting, so a meta-trained model can take other values
ADAPTATION_SETTINGS = ("adapt_steps", "adapt_lr", "fine_tune_steps", "fine_tune_lr")


def adaptation_settings(algorithm: str, pairs: list[str]) -> dict:
    """:func:`learner_settings` for adapting a model meta-trained with ``algorithm``: only
    :data:`ADAPTATION_SETTINGS` (the others shaped the meta-training and stay as trained)."""
    return check_adaptation(algorithm, learner_settings([algorithm], pairs))


def check_adaptation(algorithm: str, settings: dict) -> dict:
    """``settings``, when all are adaptation settings of ``algorithm``; else ValueError."""
    allowed = [k for k in ADAPTATION_SETTINGS if own_settings(algorithm, {k: 0})]
    if fixed := sorted(set(settings) - set(allowed)):
        raise ValueError(
            f"{', '.join(fixed)}: fixed by meta-training; adaptation takes {', '.join(allowed)}"
        )
    return settings


def describe_settings() -> list[tuple[str, str, str]]:
    """Every learner setting: (name, its defaults with the learners that have them, what it
    does), in registry order — what `cropmeta learners` prints."""
    rows: dict[str, tuple[dict[str, list[str]], str]] = {}
    for name, (_, cfg) in LEARNERS.items():
        for key, field in cfg.model_fields.items():
            if key == "name":
                continue
            default = field.get_default(call_default_factory=True)
            shown = "(nested)" if isinstance(default, BaseModel) else repr(default)
            defaults, _ = rows.setdefault(key, ({}, field.description or ""))
            defaults.setdefault(shown, []).append(name)
    return [
        (key, "; ".join(f"{d} ({', '.join(names)})" for d, names in defaults.items()), text)
        for key, (defaults, text) in rows.items()
    ]
