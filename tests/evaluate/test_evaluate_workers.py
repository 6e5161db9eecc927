"""`evaluate` over several processes gives the figures of one (issue 21, item 2)."""

import math

import pytest

from cropmeta.evaluate.protocol import EvaluationConfig, run_evaluation
from cropmeta.evaluate.workers import run_jobs
from cropmeta.learners.config import MetaTrainConfig


def test_jobs_come_back_in_order_and_a_failure_is_raised():
    args = [(7, 2), (9, 4), (20, 6), (5, 5)]
    assert run_jobs(divmod, args, workers=2) == [divmod(*a) for a in args]
    seen = []
    assert run_jobs(divmod, args, workers=1, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(ZeroDivisionError):
        run_jobs(divmod, [(1, 1), (1, 0), (2, 1)], workers=2)


def _timeless(value):
    """``value`` without its wall times (``seconds``, ``val_seconds``…, at any depth)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _figures(results: dict) -> list:
    """What an evaluation found: every run and every training history, without wall times."""
    return [_timeless(results["runs"]), _timeless(results["training"]), results["models"]]


@pytest.mark.slow
def test_two_workers_give_the_figures_of_one(world, tmp_path):
    cfg = EvaluationConfig(
        learners=["protonet", "anil"],
        shots=[2],
        seeds=2,
        baselines=False,  # the learners' own work is what moves between processes
        automatic=False,
        transductive=False,
        meta=MetaTrainConfig(iterations=6, n_way=3, k_shot=2, q_query=2, val_every=3),
    )
    one = run_evaluation(world, tmp_path / "one", cfg, seed=3, workers=1)
    two = run_evaluation(world, tmp_path / "two", cfg, seed=3, workers=2)
    assert one["environment"]["threads"] == two["environment"]["threads"] == 1
    assert two["environment"]["workers"] == 2
    a, b = _figures(one), _figures(two)
    assert a[0] == b[0] and a[1] == b[1]  # every run's figures, every training history
    assert len(a[0]) == 2 * 2 * 2 and all(not math.isnan(r["metrics"]["macro_f1"]) for r in a[0]
                                  if "metrics" in r)  # targets × draws × learners  # fmt: skip
