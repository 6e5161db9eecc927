"""The meta-training options of the gradient learners change memory and time, not the gradient.

``task_chunk`` backpropagates the meta-batch a few tasks at a time and ``checkpoint`` recomputes
each inner step's graph in the backward pass (see :mod:`cropmeta.learners.base`); in float64
both must give the default's meta-gradient (model and learner state) to rounding.
"""

import pytest
import torch
from test_learners import DOY, STEPS, random_batch, tiny_model

from cropmeta.learners.registry import build_learner
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig

OPTIONS = [
    {"task_chunk": 1},
    {"task_chunk": 2},  # 3 tasks: a chunk of 2 and one of 1
    {"checkpoint": True},
    {"checkpoint": True, "task_chunk": 2},
]


def meta_gradient(name: str, options: dict, model=None, tasks: int = 3):
    """Loss, accuracy and outer gradients (model, then learner state) of one meta-batch."""
    model = tiny_model(dtype=torch.float64) if model is None else model
    learner = build_learner(name, {"inner_steps": 3, "inner_lr": 0.3, **options})
    learner.setup(model)
    learner.state.to(torch.float64)
    model.zero_grad()
    loss, acc = learner.meta_backward(model, random_batch(tasks, dtype=torch.float64), DOY)
    params = [*model.parameters(), *learner.state.parameters()]
    return loss, acc, [p.grad.clone() for p in params if p.grad is not None]


@pytest.mark.parametrize("head_init", ["shared", "prototypes"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(map(str, o.items())))
@pytest.mark.parametrize("name", ["maml", "fomaml", "metasgd", "anil"])
def test_option_gives_the_default_meta_gradient(name, options, head_init):
    """Also with Proto-MAML's heads, which start stacked over the tasks."""
    loss, acc, grads = meta_gradient(name, {"head_init": head_init})
    loss_o, acc_o, grads_o = meta_gradient(name, {**options, "head_init": head_init})
    assert loss_o == pytest.approx(loss, rel=1e-12)
    assert acc_o == pytest.approx(acc, rel=1e-6)  # accuracy is a float32 mean
    for a, b in zip(grads_o, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("head_init", ["shared", "prototypes"])
def test_checkpoint_with_an_encoder_looped_over_tasks(head_init):
    """An encoder without a vmap rule (LSTM) maps each step over the tasks by a loop (with
    prototype heads the first step's parameters are partly shared, partly per task)."""
    cfg = EncoderConfig(name="lstm", hidden=4, layers=1, embed=4)

    def model():
        torch.manual_seed(0)
        return CropClassifier(3, STEPS, cfg).to(torch.float64)

    options = {"checkpoint": True, "task_chunk": 1, "head_init": head_init}
    _, _, grads = meta_gradient("maml", {"head_init": head_init}, model(), tasks=2)
    _, _, grads_o = meta_gradient("maml", options, model(), tasks=2)
    for a, b in zip(grads_o, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_checkpointed_meta_loss_without_gradients():
    """Validation scores tasks under no_grad: the checkpointed learner then runs plainly."""
    model, batch = tiny_model(), random_batch()
    learner = build_learner("maml", {"inner_steps": 2, "checkpoint": True})
    with torch.no_grad():
        loss, acc = learner.meta_loss(model, batch, DOY)
    expected = build_learner("maml", {"inner_steps": 2}).meta_loss(model, batch, DOY)
    assert loss.item() == pytest.approx(expected[0].item(), rel=1e-6)
    assert acc.item() == expected[1].item()


def test_a_first_order_warm_start_gives_fomamls_gradient_then_mamls():
    """``first_order_warmup`` 0.4: MAML's meta-gradient is FOMAML's while less than 40 % of
    meta-training's iterations are done, second order's after; the two differ."""

    def gradient(options: dict, progress: float):
        model = tiny_model(dtype=torch.float64)
        learner = build_learner("maml", {"inner_steps": 3, "inner_lr": 0.3, **options})
        learner.setup(model)
        learner.progress = progress
        model.zero_grad()
        learner.meta_backward(model, random_batch(3, dtype=torch.float64), DOY)
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    warm = {"first_order_warmup": 0.4}
    for progress, same_as in ((0.0, {"first_order": True}), (0.39, {"first_order": True}),
                              (0.4, {}), (0.9, {})):  # fmt: skip
        for a, b in zip(gradient(warm, progress), gradient(same_as, progress), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    first, second = gradient({"first_order": True}, 0.0), gradient({}, 0.0)
    assert any(not torch.allclose(a, b) for a, b in zip(first, second, strict=True))
