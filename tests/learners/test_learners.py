"""Exactness of the learners against explicit references, and that meta-training helps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from cropmeta.learners.inner_loop import HEAD, expand_head
from cropmeta.learners.registry import LEARNERS, build_learner
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig
from cropmeta.tasks.episodes import TaskBatch

STEPS, BANDS, WAYS, SHOTS, QUERIES = 8, 3, 3, 2, 3
DOY = torch.arange(60, 60 + 10 * STEPS, 10)


def tiny_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    cfg = EncoderConfig(hidden=4, layers=1, embed=4, kernel=3)
    return CropClassifier(BANDS, STEPS, cfg).to(dtype)


#: taxonomy codes of the random tasks' labels (task t: CODES[t..t+WAYS]) and one code no task has
CODES = [10, 11, 12, 13, 14, 15, 16]


def random_batch(tasks=2, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    codes = torch.tensor([CODES[t : t + WAYS] for t in range(tasks)])
    y_s = torch.arange(WAYS).repeat_interleave(SHOTS).repeat(tasks, 1)
    y_q = torch.arange(WAYS).repeat_interleave(QUERIES).repeat(tasks, 1)
    x_s = (
        torch.randn(tasks, WAYS * SHOTS, STEPS, BANDS, generator=g, dtype=dtype)
        + y_s[..., None, None]
    )
    x_q = (
        torch.randn(tasks, WAYS * QUERIES, STEPS, BANDS, generator=g, dtype=dtype)
        + y_q[..., None, None]
    )
    return TaskBatch(x_s, y_s, x_q, y_q, codes=codes)


def reference_maml_grad(
    model, batch, steps, lr, first_order, keys=None, prototypes=False, heads=None
):
    """MAML's meta-gradient by an explicit per-task unroll with torch.autograd.grad (``keys``:
    the parameters the inner loop adapts, None for all; ANIL adapts the head; ``prototypes``:
    Proto-MAML's head, the class means m of the support embeddings as rows 2m/d, biases −|m|²/d
    for an embedding of width d; ``heads``: class heads, (weight, bias) leaves indexed by row,
    each task's head gathered from the rows of its codes — their gradients come last)."""
    params = dict(model.named_parameters())
    if heads is not None:  # the one-row head is not used
        params = {k: v for k, v in params.items() if not k.startswith("head.")}
    total = 0
    for t in range(batch.x_s.shape[0]):
        fast = expand_head(dict(model.named_parameters()), WAYS)
        if heads is not None:
            rows = torch.tensor([CODES.index(int(c)) for c in batch.codes[t]])
            fast["head.weight"], fast["head.bias"] = heads[0][rows], heads[1][rows]
        if prototypes:  # the inner gradient holds the head: fast weights apart from the params
            fast = {k: v.clone() for k, v in fast.items()}
            emb, y = model.encoder(batch.x_s[t], DOY), batch.y_s[t]
            means = torch.stack([emb[y == c].mean(0) for c in range(WAYS)])
            width = emb.shape[-1]  # distances divided by the embedding's width
            fast["head.weight"] = fast["head.weight"] + 2 * means / width
            fast["head.bias"] = fast["head.bias"] - (means**2).sum(1) / width
        for _ in range(steps):
            loss = F.cross_entropy(functional_call(model, fast, (batch.x_s[t], DOY)), batch.y_s[t])
            adapted = [k for k in fast if keys is None or k in keys]
            grads = torch.autograd.grad(
                loss, [fast[k] for k in adapted], create_graph=not first_order
            )
            fast = fast | {k: fast[k] - lr * g for k, g in zip(adapted, grads, strict=True)}
        total = total + F.cross_entropy(
            functional_call(model, fast, (batch.x_q[t], DOY)), batch.y_q[t]
        )
    wrt = [*params.values(), *(heads or ())]
    return torch.autograd.grad(total / batch.x_s.shape[0], wrt)


@pytest.mark.parametrize("head_init", ["shared", "prototypes"])
@pytest.mark.parametrize("name", ["maml", "fomaml", "anil"])
def test_maml_meta_gradient_equals_unrolled_reference(name, head_init):
    """In float64 the vmapped, functional meta-gradient equals the explicit unroll exactly
    (more queries than support samples: the query gradient is taken in chunks), with the
    shared-row head and with Proto-MAML's (whose gradient also flows through the prototypes)."""
    model, batch = tiny_model(dtype=torch.float64), random_batch(dtype=torch.float64)
    assert batch.x_q.shape[1] > batch.x_s.shape[1]
    learner = build_learner(name, {"inner_steps": 3, "inner_lr": 0.3, "head_init": head_init})
    loss, _ = learner.meta_loss(model, batch, DOY)
    ours = torch.autograd.grad(loss, list(model.parameters()))
    keys = HEAD if name == "anil" else None
    ref = reference_maml_grad(
        model, batch, 3, 0.3, name == "fomaml", keys, prototypes=head_init == "prototypes"
    )
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_maml_meta_gradient_matches_finite_differences():
    model, batch = tiny_model(dtype=torch.float64), random_batch(dtype=torch.float64)
    learner = build_learner("maml", {"inner_steps": 2, "inner_lr": 0.3})
    loss, _ = learner.meta_loss(model, batch, DOY)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    direction = [torch.randn_like(p) for p in model.parameters()]
    analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True))
    eps = 1e-5
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(model.parameters(), direction, strict=True):
                p.add_(sign * eps * d)
        values.append(learner.meta_loss(model, batch, DOY)[0].item())
        with torch.no_grad():
            for p, d in zip(model.parameters(), direction, strict=True):
                p.sub_(sign * eps * d)
    numeric = (values[0] - values[1]) / (2 * eps)
    assert numeric == pytest.approx(analytic.item(), rel=1e-5, abs=1e-8)
    # and second order matters here: the first-order gradient differs
    fo = build_learner("fomaml", {"inner_steps": 2, "inner_lr": 0.3})
    fo_grads = torch.autograd.grad(fo.meta_loss(model, batch, DOY)[0], list(model.parameters()))
    assert not all(torch.allclose(a, b) for a, b in zip(grads, fo_grads, strict=True))


def test_reptile_gradient_is_theta_minus_mean_of_adapted_weights():
    model, batch = tiny_model(), random_batch(tasks=3)
    learner = build_learner("reptile", {"inner_steps": 4, "inner_lr": 0.2})
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    learner.meta_backward(model, batch, DOY)
    reached = []
    for t in range(3):  # plain SGD on each task's support set
        fast = {k: v.clone().requires_grad_(True) for k, v in expand_head(theta, WAYS).items()}
        for _ in range(4):
            loss = F.cross_entropy(functional_call(model, fast, (batch.x_s[t], DOY)), batch.y_s[t])
            grads = torch.autograd.grad(loss, list(fast.values()))
            fast = {
                k: (v - 0.2 * g).detach().requires_grad_(True)
                for (k, v), g in zip(fast.items(), grads, strict=True)
            }
        fast["head.weight"] = fast["head.weight"].mean(0, keepdim=True)
        fast["head.bias"] = fast["head.bias"].mean(0, keepdim=True)
        reached.append(fast)
    for name, p in model.named_parameters():
        expected = theta[name] - torch.stack([r[name] for r in reached]).mean(0)
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-6)


def test_anil_adapts_only_the_head():
    model, batch = tiny_model(), random_batch()
    learner = build_learner("anil", {"inner_steps": 2})
    params = {k: v.detach() for k, v in model.named_parameters()}
    fast = learner.adapted_params(model, batch.x_s[0], batch.y_s[0], DOY, WAYS, params)
    for k, v in fast.items():
        if k.startswith("encoder."):
            assert torch.equal(v, params[k])
    assert not torch.allclose(fast["head.weight"], params["head.weight"].expand(WAYS, -1))


def test_metasgd_learns_its_rates_and_saves_them(tmp_path):
    from cropmeta.ingest.prepare import Normaliser, Preparation, TemporalGrid
    from cropmeta.models.bundle import BundleConfig, load_bundle, save_bundle

    model, batch = tiny_model(), random_batch()
    learner = build_learner("metasgd", {"inner_lr": 0.1})
    learner.setup(model)
    loss, _ = learner.meta_loss(model, batch, DOY)
    loss.backward()
    rate = next(iter(learner.state.values()))
    assert rate.grad is not None and rate.grad.abs().sum() > 0
    with torch.no_grad():
        rate.mul_(2)
    prep = Preparation(bands=["a", "b", "c"], grid=TemporalGrid(start_doy=60, end_doy=130))
    cfg = BundleConfig(
        kind="meta",
        preparation=prep,
        normaliser=Normaliser(mean=[0] * 3, std=[1] * 3),
        encoder=model.shape[2],
        learner={"algorithm": "metasgd"},
    )
    save_bundle(model, cfg, tmp_path / "m", learner.state)
    again = build_learner("metasgd", {"inner_lr": 0.1})
    again.setup(model)
    load_bundle(tmp_path / "m", again.state)
    torch.testing.assert_close(next(iter(again.state.values())), rate.detach())


def test_protonet_head_is_nearest_prototype():
    model, batch = tiny_model(), random_batch()
    learner = build_learner("protonet")
    adapted = learner.adapt(model, batch.x_s[0], batch.y_s[0], DOY, WAYS)
    with torch.no_grad():
        emb_s, emb_q = model.encoder(batch.x_s[0], DOY), model.encoder(batch.x_q[0], DOY)
        protos = torch.stack([emb_s[batch.y_s[0] == c].mean(0) for c in range(WAYS)])
        nearest = torch.cdist(emb_q, protos).argmin(1)
        assert torch.equal(adapted(batch.x_q[0], DOY).argmax(1), nearest)


def test_protonet_fine_tuning_starts_from_the_prototypes_and_lowers_the_support_loss():
    model, batch = tiny_model(), random_batch()
    x, y = batch.x_s[0], batch.y_s[0]
    plain = build_learner("protonet").adapt(model, x, y, DOY, WAYS)
    tuned = build_learner("protonet", {"fine_tune_steps": 30, "fine_tune_lr": 1e-2}).adapt(
        model, x, y, DOY, WAYS
    )
    with torch.no_grad():
        loss = [torch.nn.functional.cross_entropy(m(x, DOY), y) for m in (plain, tuned)]
    assert loss[1] < loss[0]
    assert not torch.equal(plain.encoder.dense[1].weight, tuned.encoder.dense[1].weight)
    # the meta-model itself is left as it was
    assert torch.equal(model.encoder.dense[1].weight, tiny_model().encoder.dense[1].weight)


def bump_tasks(rng, tasks, ways=3, shots=3, queries=5):
    """A task family: each class is a bump at a task-specific day; meta-learning should help."""
    xs, ys, xq, yq = [], [], [], []
    t = np.arange(STEPS)
    for _ in range(tasks):
        centres = rng.choice(STEPS, size=ways, replace=False)

        def draw(n, centres=centres):
            y = np.repeat(np.arange(ways), n)
            x = np.exp(-((t[None, :] - centres[y][:, None]) ** 2) / 2.0)[..., None]
            x = np.repeat(x, BANDS, axis=2) + rng.normal(0, 0.3, (len(y), STEPS, BANDS))
            return x.astype(np.float32), y

        a, b = draw(shots)
        c, d = draw(queries)
        xs.append(a), ys.append(b), xq.append(c), yq.append(d)
    return TaskBatch(*(torch.from_numpy(np.stack(v)) for v in (xs, ys, xq, yq)))


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_meta_training_beats_no_meta_training(name):
    rng = np.random.default_rng(0)
    evaluation = bump_tasks(np.random.default_rng(99), 24)

    def score(model, learner):
        accs = []
        for i in range(evaluation.x_s.shape[0]):
            adapted = learner.adapt(model, evaluation.x_s[i], evaluation.y_s[i], DOY, 3)
            with torch.no_grad():
                accs.append(
                    (adapted(evaluation.x_q[i], DOY).argmax(1) == evaluation.y_q[i])
                    .float()
                    .mean()
                    .item()
                )
        return float(np.mean(accs))

    torch.manual_seed(0)
    model = CropClassifier(BANDS, STEPS, EncoderConfig(hidden=8, layers=2, embed=16, kernel=3))
    learner = build_learner(name, {"inner_steps": 3, "adapt_steps": 10})
    learner.setup(model)
    before = score(model, learner)
    opt = torch.optim.Adam([*model.parameters(), *learner.state.parameters()], lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        learner.meta_backward(model, bump_tasks(rng, 4), DOY)
        opt.step()
    after = score(model, learner)
    assert after > before + 0.1, (name, before, after)


def test_the_cli_names_every_registered_learner():
    from cropmeta.learners.names import ALGORITHMS

    assert sorted(ALGORITHMS) == sorted(LEARNERS)


@pytest.mark.parametrize("name", ["maml", "anil", "alfa"])
def test_proto_maml_starts_as_the_prototypical_network(name):
    """With ``head_init="prototypes"`` a task starts at the prototypical network's classifier
    of its support set: before any inner step it scores queries as ProtoNet does, its squared
    distances divided by the embedding's width (the shared row adds the same logit to every
    class, which softmax ignores)."""
    model, batch = tiny_model(), random_batch()
    learner = build_learner(name, {"head_init": "prototypes"})
    learner.setup(model)
    params = dict(model.named_parameters())
    x_s, y_s, x_q = batch.x_s[0], batch.y_s[0], batch.x_q[0]
    start = learner.start_params(model, params, x_s, y_s, DOY, WAYS)
    ours = functional_call(model, start, (x_q, DOY)).softmax(-1)
    protonet = build_learner("protonet").adapt(model, x_s, y_s, DOY, WAYS)
    width = model.head.in_features
    torch.testing.assert_close(ours, (protonet(x_q, DOY) / width).softmax(-1))
    shared = build_learner(name).start_params(model, params, x_s, y_s, DOY, WAYS)
    assert not torch.allclose(functional_call(model, shared, (x_q, DOY)).softmax(-1), ours)
