"""Model bundles: weights in safetensors plus a JSON config; nothing is ever unpickled."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import BaseModel, Field, ValidationError
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cropmeta.errors import InputError, atomic_output
from cropmeta.fileinfo import sha256
from cropmeta.ingest.prepare import Normaliser, Preparation
from cropmeta.models.adjusted import AdjustedClassifier
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.ensemble import EnsembleClassifier, EnsembleHeadConfig
from cropmeta.models.forest import ForestClassifier
from cropmeta.models.heads import HeadConfig, LinearHeadConfig
from cropmeta.models.presto_head import PrestoFeatureClassifier
from cropmeta.ownership import mark_folder

WEIGHTS, CONFIG = "model.safetensors", "config.json"


class ClassInfo(BaseModel):
    code: int
    name: str
    colour: str = "#808080"
    local_names: list[str] = Field(
        default_factory=list, description="the region's own label names for this class"
    )


class BundleConfig(BaseModel):
    """What a model needs besides its weights: data preparation, architecture, classes."""

    kind: str = Field(description="'meta' (meta-trained, one-row head) or 'adapted' (mappable)")
    preparation: Preparation
    normaliser: Normaliser
    encoder: EncoderConfig
    learner: dict = Field(default_factory=dict)
    head: HeadConfig = Field(
        default_factory=LinearHeadConfig,
        description="the head's kind, settings and stored support shapes (written by "
        "save_bundle from the model itself; bundles without it have a linear head)",
    )
    classes: list[ClassInfo] = Field(default_factory=list)
    history: dict = Field(default_factory=dict)
    seed: int = 0
    transfer_classes: list[int] = Field(
        default_factory=list,
        description="taxonomy codes of the stored source classifier's head rows ('transfer.*' "
        "tensors, for the transfer and source-only baselines); empty when none is stored",
    )
    weights_sha256: str | None = Field(
        None,
        description="SHA-256 of model.safetensors, checked on every load (bundles written "
        "before it was recorded have none)",
    )

    @property
    def n_classes(self) -> int:
        return max(1, len(self.classes))


Model = (
    CropClassifier
    | ForestClassifier
    | EnsembleClassifier
    | AdjustedClassifier
    | PrestoFeatureClassifier
)


def head_config(model: Model, cfg: BundleConfig) -> HeadConfig:
    """The head config that describes ``model``'s weights, saved in its bundle config ``cfg``
    (an adjusted model's member is described by ``cfg`` with the member's own head)."""
    if isinstance(model, AdjustedClassifier):
        member = cfg.model_copy(
            update={"head": head_config(model.member, cfg), "history": {}, "weights_sha256": None}
        )
        return model.cfg.model_copy(update={"member": member.model_dump(mode="json")})
    if isinstance(model, EnsembleClassifier | PrestoFeatureClassifier):
        return model.cfg
    return model.head.cfg


def build_model(cfg: BundleConfig) -> Model:
    """The network (or a saved random forest baseline, or an ensemble) ``cfg`` describes."""
    if cfg.head.kind == "forest":
        return ForestClassifier(cfg.head)
    if cfg.head.kind == "ensemble":
        members = [build_model(BundleConfig.model_validate(m)) for m in cfg.head.members]
        return EnsembleClassifier(cfg.head, members, cfg.normaliser)
    if cfg.head.kind == "presto":  # a head on frozen Presto embeddings (baselines)
        return PrestoFeatureClassifier(cfg.head)
    if cfg.head.kind == "adjusted":
        return AdjustedClassifier(
            cfg.head, build_model(BundleConfig.model_validate(cfg.head.member))
        )
    n_steps = len(cfg.preparation.grid)
    return CropClassifier(
        len(cfg.preparation.bands), n_steps, cfg.encoder, cfg.n_classes, head=cfg.head
    )


def save_bundle(
    model: torch.nn.Module,
    cfg: BundleConfig,
    out: str | Path,
    extra: torch.nn.Module | None = None,
    parts: dict[str, torch.nn.Module] | None = None,
) -> Path:
    """Weights (and a learner's own meta-learned tensors, as ``learner.*``) plus the config.

    ``parts`` stores further modules in the same file, each under its name as a prefix (the
    transfer baselines' source classifier as ``transfer.*``); :func:`load_part` reads one back.
    """
    cfg = cfg.model_copy(update={"head": head_config(model, cfg)})  # what the weights are for
    with atomic_output(out) as tmp:
        tmp.mkdir()
        state = _tensors(model)
        if extra is not None:
            state |= _tensors(extra, "learner.")
        for name, part in (parts or {}).items():
            state |= _tensors(part, f"{name}.")
        save_file(state, str(tmp / WEIGHTS))
        cfg = cfg.model_copy(update={"weights_sha256": sha256(tmp / WEIGHTS)})
        (tmp / CONFIG).write_text(cfg.model_dump_json(indent=2), encoding="utf-8")
        mark_folder(tmp, f"{cfg.kind}-model")
    return Path(out)


def _tensors(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """A module's weights as the bundle stores them: detached, contiguous, on the CPU."""
    return {prefix + k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def rebuild(model: torch.nn.Module, cfg: BundleConfig) -> tuple[Model, BundleConfig]:
    """``model`` as saving it with ``cfg`` and loading it again would give it back (built from
    the config, its weights copied, in eval mode), without a detour through the disk."""
    cfg = cfg.model_copy(update={"head": head_config(model, cfg)})
    fresh = build_model(cfg)
    fresh.load_state_dict(_tensors(model))
    return fresh.eval(), cfg


def load_config(path: str | Path) -> BundleConfig:
    """The config of a model folder (checking the folder holds weights too)."""
    p = Path(path)
    if not (p / CONFIG).is_file() or not (p / WEIGHTS).is_file():
        raise InputError(p, f"not a cropmeta model folder (needs {CONFIG} and {WEIGHTS})")
    try:
        cfg = BundleConfig.model_validate(json.loads((p / CONFIG).read_text(encoding="utf-8")))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise InputError(p / CONFIG, f"invalid model config: {where}: {first['msg']}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(p / CONFIG, f"invalid model config ({exc.__class__.__name__})") from None
    _check_size(p, cfg)
    return cfg


def _check_size(p: Path, cfg: BundleConfig) -> None:
    """Refuse a config that describes more weights than the weights file holds: its sizes come
    from a file, and building the model would allocate them before any weight is read. Only the
    file's header and a shape-only model (the meta device) are looked at."""
    try:
        with safe_open(str(p / WEIGHTS), "pt") as f:
            have = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    except Exception as exc:  # SafetensorError: a truncated header, another format
        raise InputError(p / WEIGHTS, f"unreadable weights ({str(exc)[:80]})") from None
    with torch.device("meta"):
        need = sum(t.numel() for t in build_model(cfg).state_dict().values())
    if need > have:
        raise InputError(p / CONFIG, f"describes {need:,} weights but {WEIGHTS} holds {have:,}")


def _weights(path: Path, cfg: BundleConfig) -> dict[str, torch.Tensor]:
    """The bundle's tensors, after checking the file is the one its config recorded."""
    p = path / WEIGHTS
    if cfg.weights_sha256 is not None and sha256(p) != cfg.weights_sha256:
        raise InputError(p, "weights damaged or replaced: their SHA-256 differs from config.json's")
    try:
        return load_file(str(p))
    except Exception as exc:  # SafetensorError, a truncated or foreign file
        raise InputError(p, f"unreadable weights ({str(exc)[:80]})") from None


@dataclass(frozen=True)
class Bundle:
    """A model folder read once: its config and its tensors (checked against the config's
    SHA-256 and sizes), from which the model and any stored part are built without reading the
    folder again."""

    path: Path
    config: BundleConfig
    tensors: dict[str, torch.Tensor] = field(repr=False)

    def model(self, extra: torch.nn.Module | None = None) -> Model:
        """The model (in eval mode); a learner's tensors are loaded into ``extra`` if given."""
        model = build_model(self.config)
        weights = self.tensors
        try:
            learner = {k[8:]: v for k, v in weights.items() if k.startswith("learner.")}
            own = {name for name, _ in model.named_children()}  # not learner.*, not parts
            model.load_state_dict({k: v for k, v in weights.items() if k.split(".")[0] in own})
            if extra is not None and learner:
                extra.load_state_dict(learner)
        except Exception as exc:  # size mismatches
            problem = f"weights do not fit the config ({str(exc)[:80]})"
            raise InputError(self.path / WEIGHTS, problem) from None
        return model.eval()

    def part(self, name: str) -> dict[str, torch.Tensor]:
        """The tensors stored under prefix ``name`` (see :func:`save_bundle`); empty if absent."""
        prefix = f"{name}."
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def __fspath__(self) -> str:
        return str(self.path)


def read_bundle(path: str | Path | Bundle) -> Bundle:
    """The model folder at ``path``, read and checked once (a :class:`Bundle` is returned as
    it is)."""
    if isinstance(path, Bundle):
        return path
    p = Path(path)
    cfg = load_config(p)
    return Bundle(p, cfg, _weights(p, cfg))


def load_bundle(
    path: str | Path | Bundle, extra: torch.nn.Module | None = None
) -> tuple[Model, BundleConfig]:
    """Model and config; a learner's tensors are loaded into ``extra`` when it is given."""
    bundle = read_bundle(path)
    return bundle.model(extra), bundle.config


def load_part(path: str | Path | Bundle, name: str) -> dict[str, torch.Tensor]:
    """The tensors stored under prefix ``name`` (see :func:`save_bundle`); empty when absent."""
    return read_bundle(path).part(name)


def ensemble_of(members: list[tuple[Model, BundleConfig]], names: list[str]) -> EnsembleClassifier:
    """One model averaging the probabilities of adapted ``members`` (model, config) — named by
    their method in ``names`` — which must share their data preparation and classes (each may
    have its own standardisation statistics: the first member's become the ensemble's)."""
    first = members[0][1]
    for _, cfg in members[1:]:
        if (cfg.preparation, cfg.classes) != (first.preparation, first.classes):
            raise ValueError("ensemble members must share data preparation and classes")
    configs = [  # each member's config describes its own head; histories stay out
        cfg.model_copy(update={"head": head_config(m, cfg), "history": {}}).model_dump(mode="json")
        for m, cfg in members
    ]
    head = EnsembleHeadConfig(members=configs, names=names)
    return EnsembleClassifier(head, [model for model, _ in members], first.normaliser)
