"""Class heads (``head_init=classes``): a meta-learned head row per taxonomy class of the sources.

A task's head starts at the rows of its labels' class codes, so the tasks carry their codes; the
outer gradient reaches exactly the rows of the classes drawn, and a class the sources never had
starts from the rows' mean.
"""

import numpy as np
import pytest
import torch
from test_inner_loop_options import OPTIONS, meta_gradient
from test_learners import CODES, DOY, STEPS, WAYS, random_batch, reference_maml_grad, tiny_model
from torch.func import functional_call

from cropmeta.learners.registry import build_learner, learner_settings
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig
from cropmeta.tasks.episodes import EpisodeSampler, LabelledSet, TaskBatch

CLASSES = {"head_init": "classes", "class_codes": CODES}


def class_learner(name: str, model, **settings):
    """A learner with class heads over ``CODES``, its rows drawn at random (so that they differ)."""
    learner = build_learner(name, {**CLASSES, **settings})
    learner.setup(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for row in (learner.state["class_weight"], learner.state["class_bias"]):
            row.copy_(torch.randn_like(row))
    return learner


def test_tasks_carry_the_codes_of_their_labels():
    """Every series of a region is filled with its class code: a task's support and query
    samples of label j must then hold the task's j-th code."""
    rng = np.random.default_rng(0)
    codes = rng.choice([3, 5, 8, 13], size=200)
    x = np.repeat(codes[:, None, None], STEPS, 1).repeat(2, 2).astype(np.float32)
    sampler = EpisodeSampler([LabelledSet("r", x, codes)], n_way=3, k_shot=2, q_query=2, seed=0)
    batch = sampler.sample(5)
    assert batch.codes.shape == (5, 3)
    for x_part, y_part in ((batch.x_s, batch.y_s), (batch.x_q, batch.y_q)):
        held = x_part[:, :, 0, 0].long()
        torch.testing.assert_close(held, torch.gather(batch.codes, 1, y_part))


def test_class_head_rows_and_the_mean_for_an_unknown_class():
    learner = class_learner("maml", tiny_model())
    weight, bias = learner.state["class_weight"], learner.state["class_bias"]
    w, b = learner.class_head(torch.tensor([12, 99, 10]))
    torch.testing.assert_close(w[0], weight[2])
    torch.testing.assert_close(w[2], weight[0])
    torch.testing.assert_close(w[1], weight.mean(0))
    torch.testing.assert_close(b, torch.stack([bias[2], bias.mean(), bias[0]]))


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil"])
def test_class_heads_meta_gradient_equals_unrolled_reference(name):
    """In float64 the vmapped meta-gradient, class rows included, equals the explicit unroll in
    which each task gathers its head from the rows of its codes."""
    model, batch = tiny_model(dtype=torch.float64), random_batch(tasks=3, dtype=torch.float64)
    learner = class_learner(name, model, inner_steps=3, inner_lr=0.3)
    learner.state.to(torch.float64)
    rows = (learner.state["class_weight"], learner.state["class_bias"])
    loss, _ = learner.meta_loss(model, batch, DOY)
    encoder = [p for k, p in model.named_parameters() if not k.startswith("head.")]
    ours = torch.autograd.grad(loss, [*encoder, *rows])
    keys = ("head.weight", "head.bias") if name == "anil" else None
    ref = reference_maml_grad(model, batch, 3, 0.3, name == "fomaml", keys, heads=rows)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(map(str, o.items())))
@pytest.mark.parametrize("name", ["maml", "metasgd", "anil"])
def test_memory_options_give_the_class_heads_default_gradient(name, options):
    loss, _, grads = meta_gradient(name, CLASSES)
    loss_o, _, grads_o = meta_gradient(name, {**options, **CLASSES})
    assert loss_o == pytest.approx(loss, rel=1e-12)
    for a, b in zip(grads_o, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["maml", "fomaml", "anil", "metasgd", "alfa", "timl"])
def test_the_outer_gradient_reaches_the_rows_of_the_classes_drawn(name):
    model, batch = tiny_model(), random_batch(tasks=3)
    learner = class_learner(name, model, inner_steps=2)
    learner.meta_backward(model, batch, DOY)
    drawn = {int(c) for c in batch.codes.flatten()}
    for row, code in enumerate(CODES):
        moved = learner.state["class_weight"].grad[row].abs().sum() > 0
        assert moved == (code in drawn), (name, code)


def test_adaptation_starts_each_label_at_its_class_row():
    """Before any inner step the head is the rows of the target's codes (unknown: the mean);
    the adapted model predicts from there, and codes that are not given start every label at
    the mean, where all classes score alike."""
    model, batch = tiny_model(), random_batch()
    learner = class_learner("anil", model, adapt_steps=1, adapt_lr=1e-12)
    x_s, y_s, x_q = batch.x_s[0], batch.y_s[0], batch.x_q[0]
    params = {k: v.detach() for k, v in model.named_parameters()}
    codes = torch.tensor([11, 99, 14])
    start = learner.start_params(model, params, x_s, y_s, DOY, WAYS, codes)
    weight, bias = learner.class_head(codes)
    torch.testing.assert_close(start["head.weight"], weight.detach())
    assert not start["head.weight"].requires_grad
    adapted = learner.adapt(model, x_s, y_s, DOY, WAYS, codes=codes)
    expected = functional_call(model, start, (x_q, DOY))
    torch.testing.assert_close(adapted(x_q, DOY).detach(), expected, rtol=1e-5, atol=1e-5)
    blind = learner.start_params(model, params, x_s, y_s, DOY, WAYS)
    logits = functional_call(model, blind, (x_q, DOY))
    torch.testing.assert_close(logits, logits[:, :1].expand_as(logits))


def test_meta_learned_class_rows_classify_known_classes_before_any_step():
    """A family where every class code has its own bump day in every task: after meta-training
    ANIL with class heads, the start head alone classifies new tasks of known classes; the
    shared row cannot (its start scores every class alike)."""
    rng = np.random.default_rng(0)
    days = {code: i for i, code in enumerate(CODES)}  # each class peaks on its own step

    def tasks(n):
        xs, ys, codes = [], [], []
        for _ in range(n):
            picked = rng.choice(CODES, size=WAYS, replace=False)
            y = np.repeat(np.arange(WAYS), 4)
            t = np.arange(STEPS)[None, :]
            centre = np.array([days[int(c)] for c in picked])[y][:, None]
            x = np.exp(-((t - centre) ** 2) / 2.0)[..., None].repeat(3, 2)
            xs.append(x + rng.normal(0, 0.3, x.shape)), ys.append(y), codes.append(picked)
        x, y = (torch.from_numpy(np.stack(v)) for v in (xs, ys))
        return x.float(), y, torch.from_numpy(np.stack(codes))

    torch.manual_seed(0)
    model = CropClassifier(3, STEPS, EncoderConfig(hidden=8, layers=2, embed=16, kernel=3))
    learner = build_learner("anil", {**CLASSES, "inner_steps": 2})
    learner.setup(model)
    opt = torch.optim.Adam(learner.meta_parameters(model), lr=3e-3)
    for _ in range(60):
        x, y, codes = tasks(4)
        opt.zero_grad()
        learner.meta_backward(model, TaskBatch(x[:, :8], y[:, :8], x, y, codes=codes), DOY)
        opt.step()
    x, y, codes = tasks(20)
    params = dict(model.named_parameters())
    with torch.no_grad():
        accs = []
        for i in range(len(x)):
            start = learner.start_params(model, params, x[i], y[i], DOY, WAYS, codes[i])
            logits = functional_call(model, start, (x[i], DOY))
            accs.append((logits.argmax(-1) == y[i]).float().mean().item())
    assert np.mean(accs) > 0.8, np.mean(accs)


def test_reptile_has_no_class_heads():
    with pytest.raises(ValueError, match="head_init='classes' for reptile"):
        learner_settings(["reptile"], ["head_init=classes"])


def test_class_heads_need_sorted_distinct_codes():
    with pytest.raises(ValueError, match="class_codes"):
        build_learner("maml", {"head_init": "classes", "class_codes": [3, 1]}).setup(tiny_model())


@pytest.mark.slow
def test_meta_train_from_the_source_classifier_and_adapt(regions, catalog, tmp_path, monkeypatch):
    """On the tiny world: class codes are the sources' (the transfer classifier's), the rows
    enter meta-training as the source classifier's head rows (``init=pretrained``), they travel
    in the bundle, and adaptation gets the target's codes."""
    from cropmeta.adapt.adapt import adapt_region
    from cropmeta.learners import meta_train as mt
    from cropmeta.learners.base import GradientLearner
    from cropmeta.models.bundle import load_config, load_part

    seen: list[torch.Tensor] = []
    real_optimise, real_adapt = mt.optimise, GradientLearner.adapt

    def spy(cfg, run, trainee, *args, **kwargs):
        seen.append(trainee.learner.state["class_weight"].detach().clone())
        return real_optimise(cfg, run, trainee, *args, **kwargs)

    def spy_adapt(self, *args, codes=None, **kwargs):
        seen.append(codes)
        return real_adapt(self, *args, codes=codes, **kwargs)

    monkeypatch.setattr(mt, "optimise", spy)
    monkeypatch.setattr(GradientLearner, "adapt", spy_adapt)
    cfg = mt.MetaTrainConfig(
        algorithm="anil",
        iterations=3,
        n_way=3,
        k_shot=2,
        q_query=2,
        val_every=3,
        val_tasks=2,
        init="pretrained",
        learner={"head_init": "classes"},
    )
    model_dir = mt.meta_train([regions[r.name] for r in catalog.sources()], tmp_path / "m", cfg)
    config = load_config(model_dir)
    assert config.learner["class_codes"] == config.transfer_classes
    head = load_part(model_dir, "transfer")["head.weight"]
    torch.testing.assert_close(seen[0], head)
    target = regions[catalog.targets()[0].name]
    result = adapt_region(model_dir, target, tmp_path / "a", shots=2, seed=0)
    assert "anil" in result.metrics and "source_only" in result.metrics
    target_codes = sorted({c.code for c in load_config(tmp_path / "a").classes})
    assert seen[1].tolist() == target_codes


@pytest.mark.slow
def test_evaluate_takes_class_heads_and_the_init(cli, world, tmp_path):
    import json

    from cropmeta.models.bundle import load_config

    out = tmp_path / "e"
    args = ["evaluate", "--catalog", world, "--out", out, "--shots", "2", "--seeds", "1",
            "--iterations", "2", "--task-ways", "3", "--task-shots", "2", "--task-queries", "2",
            "--set", "head_init=classes", "--forest-trees", "30"]  # fmt: skip
    res = cli(*args, "--learner", "anil", "--init", "pretrained")
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["meta"]["init"] == "pretrained"
    (model,) = out.glob("models/*/anil")
    config = load_config(model)
    assert config.learner["head_init"] == "classes"
    assert config.learner["class_codes"] == config.transfer_classes
    assert any(r["method"] == "anil" and "metrics" in r for r in results["runs"])
    refused = cli(*args, "--learner", "reptile")
    assert refused.exit_code == 2 and "head_init='classes' for reptile" in refused.stderr
