"""ALFA's generated inner-loop hyper-parameters and TIML's task-informed FiLM (see the modules)."""

import json

import numpy as np
import pytest
import torch
from checks import each
from test_learners import DOY, WAYS, random_batch, tiny_model
from torch.func import functional_call

from cropmeta.learners.registry import build_learner
from cropmeta.learners.timl import FILM, TIML, FiLMClassifier, fold_film
from cropmeta.tasks.episodes import EpisodeSampler, LabelledSet
from cropmeta.tasks.task_info import INFO_DIM, location_info, region_info


def alfa(model, seed=0, **settings):
    """ALFA set up for ``model``, its meta-network's last layer made nonzero (so all of φ acts)."""
    learner = build_learner("alfa", {"inner_steps": 2, **settings})
    learner.setup(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k in ("w2", "b2"):
            p = learner.state[k]
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return learner


def bundle_config(model, algorithm):
    from cropmeta.ingest.prepare import Normaliser, Preparation, TemporalGrid
    from cropmeta.models.bundle import BundleConfig

    prep = Preparation(bands=["a", "b", "c"], grid=TemporalGrid(start_doy=60, end_doy=130))
    return BundleConfig(
        kind="meta",
        preparation=prep,
        normaliser=Normaliser(mean=[0] * 3, std=[1] * 3),
        encoder=model.shape[2],
        learner={"algorithm": algorithm},
    )


@pytest.mark.parametrize("first_order", [False, True])
def test_alfa_meta_gradient_reaches_its_meta_network(first_order):
    model, batch = tiny_model(), random_batch()
    learner = alfa(model, first_order=first_order)
    loss, _ = learner.meta_loss(model, batch, DOY)  # vmapped over the two tasks
    loss.backward()
    for name, p in learner.state.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad.abs().sum() > 0 for p in model.parameters())


def test_alfa_second_order_gradient_matches_finite_differences():
    model, batch = tiny_model(dtype=torch.float64), random_batch(dtype=torch.float64)
    learner = alfa(model)
    learner.state.to(torch.float64)
    state = list(learner.state.values())
    grads = torch.autograd.grad(learner.meta_loss(model, batch, DOY)[0], state)
    direction = [torch.randn_like(p) for p in state]
    analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True))
    values, eps = [], 1e-6
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(state, direction, strict=True):
                p.add_(sign * eps * d)
        values.append(learner.meta_loss(model, batch, DOY)[0].item())
        with torch.no_grad():
            for p, d in zip(state, direction, strict=True):
                p.sub_(sign * eps * d)
    assert (values[0] - values[1]) / (2 * eps) == pytest.approx(analytic.item(), rel=1e-5)


def test_alfa_update_is_the_formula_for_a_hand_made_case():
    model = tiny_model()
    learner = build_learner("alfa", {"inner_steps": 2, "adapt_steps": 4})
    learner.setup(model)
    layers = len(learner.state["lr"][0])
    c_alpha, c_beta = torch.linspace(-0.5, 0.5, layers), torch.linspace(0.0, 2.0, layers)
    with torch.no_grad():  # g_φ outputs the constants 1 + c; per-step scales by hand
        learner.state["w2"].zero_()
        learner.state["b2"].copy_(torch.cat([c_alpha, c_beta]))
        learner.state["lr"].copy_(torch.tensor([[0.1] * layers, [0.2] * layers]))
        learner.state["decay"].copy_(torch.tensor([[0.01] * layers, [0.03] * layers]))
    fast = {k: torch.randn_like(v) for k, v in model.named_parameters()}
    grads = {k: torch.randn_like(v) for k, v in fast.items()}
    train, adapt = learner.inner_update(), learner.inner_update(adapting=True)
    stepped, finer = train(fast, grads, 1), adapt(fast, grads, 3)  # adapt step 3 ≙ step 1
    for i, (k, p) in enumerate(fast.items()):
        alpha, beta = 0.2 * (1 + c_alpha[i]), 1 - 0.03 * (1 + c_beta[i])
        torch.testing.assert_close(stepped[k], beta * p - alpha * grads[k])
        # adapt_steps = 2 × inner_steps: half of each meta-trained step, twice
        torch.testing.assert_close(finer[k], p - 0.5 * ((1 - beta) * p + alpha * grads[k]))


def test_alfa_meta_network_is_saved_and_loaded_with_the_bundle(tmp_path):
    from cropmeta.models.bundle import load_bundle, save_bundle

    model = tiny_model()
    learner = alfa(model)
    fast = {k: torch.randn_like(v) for k, v in model.named_parameters()}
    grads = {k: torch.randn_like(v) for k, v in fast.items()}
    generated = learner.hyperparameters(fast, grads, 1)
    fresh = build_learner("alfa", {"inner_steps": 2})
    fresh.setup(model)
    assert not torch.allclose(fresh.hyperparameters(fast, grads, 1)[0], generated[0])
    save_bundle(model, bundle_config(model, "alfa"), tmp_path / "m", learner.state)
    load_bundle(tmp_path / "m", fresh.state)
    for a, b in zip(fresh.hyperparameters(fast, grads, 1), generated, strict=True):
        torch.testing.assert_close(a, b)


def timl(model, seed=0) -> TIML:
    """TIML set up for ``model``, its task encoder's last layer made nonzero."""
    learner = build_learner("timl", {"inner_steps": 2})
    learner.setup(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k in ("w1", "b1"):
            learner.state[k].copy_(0.5 * torch.randn(learner.state[k].shape, generator=g))
    return learner


def test_timl_folded_head_gives_the_logits_of_film_then_head():
    model, batch = tiny_model(), random_batch()
    learner = timl(model)
    params = {
        k: torch.randn(WAYS, *v.shape[1:]) if k.startswith("head.") else v.detach()
        for k, v in model.named_parameters()
    }
    params |= learner.modulation(torch.tensor([0.3, -0.2, 0.9]))
    with torch.no_grad():
        film = functional_call(FiLMClassifier(model), params, (batch.x_q[0], DOY))
        plain = model.with_params(fold_film(params), WAYS)(batch.x_q[0], DOY)
    torch.testing.assert_close(plain, film, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(film, functional_call(model, params, (batch.x_q[0], DOY)))


def test_timl_modulation_depends_on_task_information():
    model, batch = tiny_model(), random_batch()
    learner = timl(model)
    here, there = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.6, 0.8])
    a, b = learner.modulation(here), learner.modulation(there)
    assert all(not torch.allclose(a[k], b[k]) for k in FILM)
    torch.testing.assert_close(learner.modulation(here)[FILM[0]], a[FILM[0]])
    adapted = [
        learner.adapt(model, batch.x_s[0], batch.y_s[0], DOY, WAYS, info=z) for z in (here, there)
    ]
    assert not torch.allclose(adapted[0].head.weight, adapted[1].head.weight)
    # with the task encoder at its initial zero, TIML is MAML: γ = 1, β = 0
    fresh = build_learner("timl")
    fresh.setup(model)
    assert torch.equal(fresh.modulation(None)[FILM[0]], torch.ones(model.head.in_features))


def test_timl_maps_each_task_with_its_own_information():
    """The vmapped meta-loss of a batch equals the mean over its tasks, each with its own info."""
    model, batch = tiny_model(), random_batch(tasks=3)
    learner = timl(model)
    batch.info = torch.randn(3, INFO_DIM)
    loss, _ = learner.meta_loss(model, batch, DOY)
    singles = []
    for t in range(3):
        one = type(batch)(
            *(v[t : t + 1] for v in (batch.x_s, batch.y_s, batch.x_q, batch.y_q, batch.info))
        )
        singles.append(learner.meta_loss(model, one, DOY)[0])
    torch.testing.assert_close(loss, torch.stack(singles).mean())
    loss.backward()
    assert all(p.grad.abs().sum() > 0 for p in learner.state.values())


def test_location_encoding():
    # the unit-sphere point of (lon, lat); a projected CRS gives the same point
    np.testing.assert_allclose(
        location_info(np.array([90.0]), np.array([0.0]), "EPSG:4326"), [0, 1, 0], atol=1e-6
    )
    np.testing.assert_allclose(
        location_info(np.array([0.0]), np.array([90.0]), "EPSG:4326"), [0, 0, 1], atol=1e-6
    )
    utm = location_info(np.array([500000.0]), np.array([0.0]), "EPSG:32631")  # 3°E on the equator
    np.testing.assert_allclose(utm, [np.cos(np.radians(3)), np.sin(np.radians(3)), 0], atol=1e-6)
    # the centroid of points either side of the antimeridian lies on it, not at 0°
    across = location_info(np.array([179.0, -179.0]), np.array([10.0, 10.0]), "EPSG:4326")
    np.testing.assert_allclose(across[:2] / np.linalg.norm(across[:2]), [-1, 0], atol=1e-6)
    assert location_info(np.array([]), np.array([]), "EPSG:4326") is None


def test_region_without_coordinates_has_no_information(tmp_path):
    import xarray as xr

    xr.Dataset({"x": ("sample", np.zeros(3))}).to_zarr(tmp_path / "r.zarr", zarr_format=2)
    assert region_info(tmp_path / "r.zarr") is None


def test_tasks_carry_their_region_information():
    rng = np.random.default_rng(0)
    sets = [
        LabelledSet(
            f"r{i}",
            rng.normal(size=(40, 4, 2)).astype(np.float32),
            np.repeat([1, 2, 3, 4], 10),
            np.full(INFO_DIM, i, np.float32),
        )
        for i in range(2)
    ]
    batch = EpisodeSampler(sets, 3, 2, 2, seed=0).sample(6)
    assert batch.info.shape == (6, INFO_DIM)
    for t in range(6):  # the info row belongs to the region the task's series came from
        region = int(batch.info[t, 0])
        assert any(np.array_equal(batch.x_s[t, 0].numpy(), x) for x in sets[region].x)
    bare = [LabelledSet(s.name, s.x, s.codes) for s in sets]
    assert EpisodeSampler(bare, 3, 2, 2, seed=0).sample(2).info is None


def test_timl_meta_train_and_adapt_on_the_tiny_world(regions, catalog, tmp_path, monkeypatch):
    """Task information travels from the datasets into meta-training and adaptation."""
    from cropmeta.adapt.adapt import adapt_region
    from cropmeta.learners.meta_train import MetaTrainConfig, meta_train
    from cropmeta.models.bundle import load_bundle

    seen: dict[str, list] = {"train": [], "adapt": []}
    meta_backward, adapt = TIML.meta_backward, TIML.adapt

    def spy_train(self, model, batch, doy):
        seen["train"].append(batch.info)
        return meta_backward(self, model, batch, doy)

    def spy_adapt(self, *args, info=None, **kwargs):
        seen["adapt"].append(info)
        return adapt(self, *args, info=info, **kwargs)

    monkeypatch.setattr(TIML, "meta_backward", spy_train)
    monkeypatch.setattr(TIML, "adapt", spy_adapt)

    sources = [regions[r.name] for r in catalog.sources()]
    target = regions[catalog.targets()[0].name]
    cfg = MetaTrainConfig(
        algorithm="timl", iterations=3, n_way=3, k_shot=2, q_query=2, val_every=3, val_tasks=2
    )
    model_dir = meta_train(sources, tmp_path / "meta", cfg, seed=1)
    result = adapt_region(
        model_dir, target, tmp_path / "adapted", shots=2, seed=1, transductive=False
    )  # one adaptation (alignment would adapt again, on the aligned support)

    infos = {tuple(region_info(p)) for p in sources}
    assert len(infos) == len(sources)  # the regions lie in different places
    assert len(seen["train"]) == 3 and len(seen["adapt"]) == 1
    assert all(i is not None and {tuple(r) for r in i.numpy()} <= infos for i in seen["train"])
    np.testing.assert_array_equal(seen["adapt"][0].numpy(), region_info(target))
    assert "timl" in result.metrics and result.n_support == 2 * len(result.classes)
    model, cfg = load_bundle(tmp_path / "adapted")  # an ordinary classifier, FiLM folded in
    assert cfg.kind == "adapted" and model.head.weight.shape[0] == len(result.classes)


@pytest.mark.slow
def test_alfa_meta_train_and_adapt_cli(cli, regions, catalog, tmp_path):
    from safetensors.torch import load_file

    sources = [regions[r.name] for r in catalog.sources()]
    meta = tmp_path / "meta"
    args = ("--iterations", "3", "--ways", "3", "--shots", "2", "--queries", "2")
    res = cli("meta-train", *each("--region", sources), "--algorithm", "alfa", "--out", meta, *args)
    assert res.exit_code == 0, res.output
    weights = load_file(str(meta / "model.safetensors"))
    assert {"learner.w0", "learner.lr", "learner.decay"} <= set(weights)  # the meta-network
    out = tmp_path / "adapted"
    target = regions[catalog.targets()[0].name]
    res = cli("adapt", "--model", meta, "--region", target, "--shots", "2", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert 0 <= result["metrics"]["alfa"]["overall_accuracy"] <= 1
    assert not any(k.startswith("learner.") for k in load_file(str(out / "model.safetensors")))


@pytest.mark.parametrize("algorithm", ["maml", "alfa"])
def test_adaptation_keeps_the_iterate_with_the_lowest_support_loss(algorithm):
    """A step size that overshoots raises the support loss again; adapt returns the best iterate
    (the guard that stops ALFA's learned negative late-step rates from undoing an adaptation)."""
    import torch.nn.functional as F

    from cropmeta.learners.inner_loop import expand_head, inner_loop

    model, batch = tiny_model(), random_batch(tasks=1)
    x, y = batch.x_s[0], batch.y_s[0]
    learner = build_learner(algorithm, {"inner_steps": 2, "adapt_steps": 6, "adapt_lr": 40.0})
    learner.setup(model)
    if algorithm == "alfa":  # its rates are generated, not adapt_lr: scale the learned ones
        with torch.no_grad():
            learner.state["lr"].fill_(40.0)
    start = expand_head({k: v.detach() for k, v in model.named_parameters()}, WAYS)
    rule, lr = learner.inner_update(adapting=True), learner.inner_lr(40.0 / learner.cfg.inner_lr)

    def loss_after(steps):
        params = inner_loop(model, start, x, y, DOY, steps, lr, True, None, rule)
        return F.cross_entropy(functional_call(model, params, (x, DOY)), y).item()

    losses = [loss_after(steps) for steps in range(7)]
    assert min(losses) < losses[-1], "the test needs an adaptation whose last step is not best"
    adapted = learner.adapt(model, x, y, DOY, WAYS)
    with torch.no_grad():
        got = F.cross_entropy(adapted(x, DOY), y).item()
    assert got == pytest.approx(min(losses), rel=1e-5)
