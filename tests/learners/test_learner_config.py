"""The learner's settings are typed (issue 20, item 3): a discriminated union over the
learners' own configs, named by the algorithm, in meta-training and in evaluation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cropmeta.cli.options import learner_configs
from cropmeta.evaluate.protocol import EvaluationConfig
from cropmeta.learners.anil import ANILConfig
from cropmeta.learners.config import MetaTrainConfig
from cropmeta.learners.maml import MAMLConfig
from cropmeta.learners.protonet import ProtoNetConfig


def test_settings_without_a_name_are_the_algorithms():
    cfg = MetaTrainConfig(algorithm="anil", learner={"inner_steps": 2})
    assert isinstance(cfg.learner, ANILConfig) and cfg.learner.inner_steps == 2
    assert isinstance(MetaTrainConfig().learner, MAMLConfig)


def test_a_recorded_config_reads_back_the_same():
    cfg = MetaTrainConfig(algorithm="protonet", learner={"fine_tune_steps": 3})
    again = MetaTrainConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg and isinstance(again.learner, ProtoNetConfig)


@pytest.mark.parametrize(
    "given",
    [
        {"algorithm": "maml", "learner": {"name": "protonet"}},  # another learner's settings
        {"algorithm": "maml", "learner": {"name": "nope"}},  # no such learner
        {"algorithm": "maml", "learner": {"inner_steps": 0}},  # out of range
        {"algorithm": "maml", "learner": {"inner_lr": "fast"}},  # not a number
    ],
)
def test_bad_learner_settings_are_refused(given):
    with pytest.raises(ValidationError):
        MetaTrainConfig.model_validate(given)


def test_evaluation_gives_each_learner_its_own_settings():
    typed = learner_configs(["maml", "protonet"], ["inner_steps=2", "fine_tune_steps=4"])
    cfg = EvaluationConfig(learners=["maml", "protonet", "anil"], learner_settings=typed)
    assert cfg.learner_settings["maml"].inner_steps == 2
    assert cfg.learner_settings["protonet"].fine_tune_steps == 4
    assert cfg.learner_settings["anil"] == ANILConfig()  # not given: its defaults
    maml = cfg.meta_config("maml", baselines=True)
    assert maml.algorithm == "maml" and maml.learner.inner_steps == 2 and maml.baselines
    assert cfg.meta_config("protonet", baselines=False).learner.fine_tune_steps == 4


def test_evaluation_refuses_settings_filed_under_another_learner():
    with pytest.raises(ValidationError, match="protonet"):
        EvaluationConfig(learners=["maml"], learner_settings={"maml": ProtoNetConfig()})
