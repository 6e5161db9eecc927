"""A repeated `cropmeta evaluate` reuses the models it finished and retrains changed ones
(its own file, so it runs beside tests/evaluate/test_evaluate.py's long fixtures)."""

from __future__ import annotations

import json

import pytest

#: the draws' scoring is other tests' concern: only the learners are adapted and scored
QUICK = ("--no-transductive", "--no-automatic", "--forest-trees", "30")


@pytest.mark.slow
def test_a_rerun_reuses_finished_models_and_retrains_changed_ones(cli, world, tmp_path):
    """An interrupted or repeated evaluation resumes after its last finished model (also one
    recorded before a setting was added, which it had at the default); a model trained with
    other settings is trained again."""
    out = tmp_path / "evaluation"
    args = ["evaluate", "--catalog", world, "--out", out, "--learner", "protonet",
            "--shots", "1", "--seeds", "1", "--task-ways", "3", "--task-shots", "2",
            "--task-queries", "3", *QUICK]  # fmt: skip

    def run(iterations):
        res = cli(*args, "--iterations", iterations)
        assert res.exit_code == 0, res.output
        results = json.loads((out / "results.json").read_text())
        weights = {p: p.stat().st_mtime_ns for p in out.glob("models/*/*/model.safetensors")}
        return results, weights

    first, weights = run("5")
    for config in out.glob("models/*/*/config.json"):  # as written before `augment` existed
        record = json.loads(config.read_text())
        del record["history"]["config"]["augment"]
        config.write_text(json.dumps(record))
    again, weights_again = run("5")
    assert weights and weights_again == weights  # not written again
    assert all(r.get("reused") for t in again["training"].values() for r in t.values())
    untimed = [
        [{k: v for k, v in r.items() if k != "seconds"} for r in x["runs"]] for x in (first, again)
    ]
    assert untimed[0] == untimed[1]
    changed, weights_changed = run("6")
    assert all(weights_changed[p] != t for p, t in weights.items())
    assert not any(r.get("reused") for t in changed["training"].values() for r in t.values())


@pytest.mark.slow
def test_a_learner_setting_retrains_only_the_learners_it_belongs_to(cli, world, tmp_path):
    """`--set head_init=prototypes` is MAML's setting, not ProtoNet's: a rerun with it retrains
    MAML and reuses ProtoNet's model, whose recorded settings stay its own."""
    out = tmp_path / "evaluation"
    args = ["evaluate", "--catalog", world, "--out", out, "--learner", "protonet",
            "--learner", "maml", "--shots", "1", "--seeds", "1", "--task-ways", "3",
            "--task-shots", "2", "--task-queries", "3", "--iterations", "3", *QUICK]  # fmt: skip
    assert cli(*args).exit_code == 0
    res = cli(*args, "--set", "head_init=prototypes")
    assert res.exit_code == 0, res.output
    from cropmeta.learners.maml import MAMLConfig
    from cropmeta.learners.protonet import ProtoNetConfig

    training = json.loads((out / "results.json").read_text())["training"]
    for records in training.values():
        assert records["protonet"].get("reused") and not records["maml"].get("reused")
        assert records["protonet"]["history"]["config"]["learner"] == ProtoNetConfig().model_dump()
        maml = records["maml"]["history"]["config"]["learner"]
        assert maml == MAMLConfig(head_init="prototypes").model_dump()
