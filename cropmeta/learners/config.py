"""The configuration of a meta-training run, declared once: meta-training, its loop, the
checkpoints that resume it and the CLI read it from here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from cropmeta.learners.alfa import ALFAConfig
from cropmeta.learners.anil import ANILConfig
from cropmeta.learners.maml import FOMAMLConfig, MAMLConfig
from cropmeta.learners.matching import MatchingConfig
from cropmeta.learners.metasgd import MetaSGDConfig
from cropmeta.learners.protonet import ProtoNetConfig
from cropmeta.learners.relation import RelationConfig
from cropmeta.learners.reptile import ReptileConfig
from cropmeta.learners.schedule import Schedule
from cropmeta.learners.snail import SnailConfig
from cropmeta.learners.timl import TIMLConfig
from cropmeta.models.encoders import EncoderConfig
from cropmeta.tasks.augment import TaskAugmentation

#: One learner's own settings, typed: the learner is named by ``name`` (pydantic's
#: discriminated union), so a setting another learner has is refused where it is given.
LearnerConfig = Annotated[
    MAMLConfig
    | FOMAMLConfig
    | ANILConfig
    | MetaSGDConfig
    | ReptileConfig
    | ProtoNetConfig
    | MatchingConfig
    | RelationConfig
    | SnailConfig
    | ALFAConfig
    | TIMLConfig,
    Field(discriminator="name"),
]


class MetaTrainConfig(BaseModel):
    """Task shape, optimisation and model choices of a meta-training run."""

    algorithm: str = "maml"
    learner: LearnerConfig = Field(
        default_factory=MAMLConfig,
        description="the learner's own settings (given as a mapping without ``name``: those of "
        "``algorithm``)",
    )
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    n_way: int = Field(5, ge=2)
    k_shot: int = Field(5, ge=1)
    q_query: int = Field(10, ge=1)
    meta_batch: int = Field(4, ge=1)
    iterations: int = Field(300, ge=1)
    meta_lr: float = Field(1e-3, gt=0)
    val_share: float = Field(0.2, ge=0.05, le=0.5, description="source samples held out")
    val_regions: list[str] = Field(
        default_factory=list,
        description="source regions held out whole for the validation tasks (the others then "
        "train on all their samples); empty: val_share of every source region",
    )
    val_every: int = Field(50, ge=1)
    val_tasks: int = Field(16, ge=1)
    patience: int | None = Field(
        None, ge=1, description="stop after this many validations without improvement"
    )
    schedule: Schedule = Field("cosine", description="meta learning-rate schedule")
    warmup: int = Field(0, ge=0, description="iterations of linear learning-rate warm-up")
    step_every: int | None = Field(
        None, ge=1, description="step schedule: iterations between decays [iterations / 3]"
    )
    step_gamma: float = Field(0.1, gt=0, le=1, description="step schedule: decay factor")
    baselines: bool = Field(
        True,
        description="also pre-train a source classifier on the same training split and store "
        "it, and the source samples, in the bundle, for adapt's transfer, source-only and "
        "pooled baselines (cropmeta.baselines)",
    )
    source_samples: int = Field(
        20_000,
        ge=0,
        le=1_000_000,
        description="at most this many source samples stored for the pooled baselines (a "
        "stratified random subset when the sources have more)",
    )
    augment: TaskAugmentation = Field(
        default_factory=TaskAugmentation,
        description="simulated regions: per-task phenology shift and band gain / offset of the "
        "meta-training tasks (cropmeta.tasks.augment); validation tasks stay as drawn",
    )
    augment_baselines: bool = Field(
        False,
        description="also pre-train the baselines' source classifier on simulated regions "
        "(each training sample its own draw of ``augment``)",
    )
    init: Literal["random", "pretrained"] = Field(
        "random",
        description="the meta-model's starting encoder: random, or the encoder of the source "
        "classifier pre-trained with cross-entropy (Meta-Baseline, Chen et al., 2021, ICCV; "
        "Tian et al., 2020, ECCV) — the same one the baselines use, trained once",
    )

    @model_validator(mode="before")
    @classmethod
    def _settings_of_the_algorithm(cls, data: Any) -> Any:
        """Settings given without a learner's name are the algorithm's."""
        if isinstance(data, dict):
            learner = data.get("learner")
            if learner is None or (isinstance(learner, dict) and "name" not in learner):
                name = data.get("algorithm", "maml")
                data = {**data, "learner": {**(learner or {}), "name": name}}
        return data

    @model_validator(mode="after")
    def _one_learner(self) -> MetaTrainConfig:
        if self.learner.name != self.algorithm:
            raise ValueError(f"learner settings of {self.learner.name}, algorithm {self.algorithm}")
        return self

    @model_validator(mode="after")
    def _baselines_need_an_augmentation(self) -> MetaTrainConfig:
        if self.augment_baselines and not self.augment.active:
            raise ValueError("augment_baselines needs an active augment (shift, gain or offset)")
        return self


def learner_config(name: str, settings: dict | None = None) -> LearnerConfig:
    """The learner ``name``'s typed settings from ``settings`` (its own keys: another
    learner's are ignored), its defaults for the rest."""
    return MetaTrainConfig(algorithm=name, learner=settings or {}).learner
