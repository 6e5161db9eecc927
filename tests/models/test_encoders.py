"""Every temporal encoder: shape, learns a phenology task, per-sample, uses the day of year, and
works under the functional transforms (vmap over tasks, second-order grad) the learners use."""

from __future__ import annotations

import math
from typing import get_args

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoder_registry import ENCODERS, build_encoder
from cropmeta.models.encoders import EncoderConfig, EncoderName
from cropmeta.models.sequence import SEQUENCE_ENCODERS, LSTMEncoder

# presto reads named bands and its normaliser; tests/models/test_presto.py tests it on such series
NAMES = [name for name in get_args(EncoderName) if name != "presto"]
N_BANDS, N_STEPS = 10, 25
# an irregular calendar, as cloud masking leaves it
DOY = torch.linspace(15, 345, N_STEPS).round() + torch.tensor([0, 3, -2] * 8 + [0])


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: a second intra-op thread only waits on a shared CPU (oversubscribed
    OpenMP threads made a 150-step fit 40x slower here), so run single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def phenology(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three "crops" that green up at different days of year (a Gaussian bump per band, with a
    band-specific amplitude), with jittered dates and amplitudes plus noise."""
    g = torch.Generator().manual_seed(seed)
    band_gain = torch.linspace(-1.0, 1.5, N_BANDS)  # the same for every sample (fixed spectra)
    xs, ys = [], []
    for label, peak in enumerate((110.0, 180.0, 250.0)):
        centre = peak + 10 * torch.randn(n_per_class, 1, generator=g)
        amp = 1 + 0.2 * torch.randn(n_per_class, 1, 1, generator=g)
        bump = torch.exp(-0.5 * ((DOY[None, :] - centre) / 30) ** 2)  # (sample, step)
        x = amp * bump[:, :, None] * band_gain + 0.3 * torch.randn(
            n_per_class, N_STEPS, N_BANDS, generator=g
        )
        xs.append(x)
        ys.append(torch.full((n_per_class,), label))
    return torch.cat(xs), torch.cat(ys)


def classifier(name: str, n_classes: int = 3, seed: int = 0) -> CropClassifier:
    torch.manual_seed(seed)
    return CropClassifier(N_BANDS, N_STEPS, EncoderConfig(name=name), n_classes)


def vmappable(name: str) -> bool:
    return getattr(build_encoder(EncoderConfig(name=name), N_BANDS, N_STEPS), "supports_vmap", True)


@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name):
    cfg = EncoderConfig(name=name)
    enc = build_encoder(cfg, N_BANDS, N_STEPS)
    z = enc(torch.randn(7, N_STEPS, N_BANDS), DOY)
    assert z.shape == (7, cfg.embed) and torch.isfinite(z).all()


def test_registry_and_vmap_flags():
    assert set(ENCODERS) == set(get_args(EncoderName))  # every name the config admits builds
    assert set(SEQUENCE_ENCODERS) == {"lstm", "transformer", "ltae"}
    assert LSTMEncoder.supports_vmap is False
    assert SEQUENCE_ENCODERS["transformer"].supports_vmap is True
    assert SEQUENCE_ENCODERS["ltae"].supports_vmap is True
    with pytest.raises(ValueError, match="heads"):
        build_encoder(EncoderConfig(name="ltae", hidden=30, heads=4), N_BANDS, N_STEPS)


def held_out_accuracy(name: str, shuffle_labels: bool = False) -> float:
    """Fit a fresh classifier on 60 series (150 full-batch Adam steps) and score 150 new ones."""
    x, y = phenology(20, seed=1)
    x_test, y_test = phenology(50, seed=2)
    if shuffle_labels:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    model = classifier(name)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x, DOY), y).backward()
        opt.step()
    with torch.no_grad():
        return (model(x_test, DOY).argmax(-1) == y_test).float().mean().item()


@pytest.mark.parametrize("name", NAMES)
def test_learns_phenology(name):
    acc = held_out_accuracy(name)
    assert acc > 0.8, f"{name}: held-out accuracy {acc:.2f} (chance 0.33)"


def test_shuffled_labels_stay_near_chance():
    """The threshold above can fail: without the label signal the same fit is near chance."""
    assert held_out_accuracy("ltae", shuffle_labels=True) < 0.6


@pytest.mark.parametrize("name", NAMES)
def test_samples_are_encoded_independently(name):
    enc = build_encoder(EncoderConfig(name=name), N_BANDS, N_STEPS).eval()
    x = torch.randn(6, N_STEPS, N_BANDS)
    with torch.no_grad():
        together = enc(x, DOY)
        alone = torch.cat([enc(x[i : i + 1], DOY) for i in range(len(x))])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_day_of_year_matters(name):
    enc = build_encoder(EncoderConfig(name=name), N_BANDS, N_STEPS)
    x = torch.randn(4, N_STEPS, N_BANDS)
    with torch.no_grad():
        shift = (enc(x, DOY) - enc(x, DOY + 40)).abs().max().item()
    assert shift > 1e-2


def test_doy_encoding_positions_by_date():
    from cropmeta.models.transformer import doy_encoding

    pe = doy_encoding(torch.tensor([0.0, 100.0, 100.0]), 8)
    assert pe.shape == (3, 8)
    assert torch.equal(pe[1], pe[2]) and not torch.allclose(pe[0], pe[1])
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 4))  # sin(0), cos(0)
    assert math.isclose(pe[1, 0].item(), math.sin(100.0), abs_tol=1e-6)


def test_ltae_attention_is_a_distribution_over_steps():
    from cropmeta.models.ltae import LTAE

    enc = LTAE(N_BANDS, N_STEPS, EncoderConfig(name="ltae"))
    w = enc.attention(torch.randn(5, N_STEPS, N_BANDS), DOY)
    assert w.shape == (5, 4, N_STEPS) and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(5, 4))


def _tasks(n_tasks: int = 3, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n_tasks, n, N_STEPS, N_BANDS, generator=g)
    return x, torch.randint(0, 3, (n_tasks, n), generator=g)


@pytest.mark.parametrize("name", [n for n in NAMES if vmappable(n)])
def test_vmap_over_tasks_matches_loop(name):
    model = classifier(name)
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = _tasks()

    def loss(p, xt, yt):
        return F.cross_entropy(functional_call(model, p, (xt, DOY)), yt)

    batched = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for t in range(len(x)):
        looped = grad(loss)(params, x[t], y[t])
        for k in params:
            torch.testing.assert_close(batched[k][t], looped[k], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["transformer", "ltae"])
def test_second_order_through_inner_step(name):
    """MAML's outer gradient through a vmapped inner step equals the per-task loop's."""
    model = classifier(name)
    params = dict(model.named_parameters())
    x, y = _tasks()

    def loss(p, xt, yt):
        return F.cross_entropy(functional_call(model, p, (xt, DOY)), yt)

    def one_task(p, xt, yt):
        g = grad(loss)(p, xt[:3], yt[:3])
        return loss({k: p[k] - 0.1 * g[k] for k in p}, xt[3:], yt[3:])

    outer = torch.autograd.grad(
        vmap(one_task, in_dims=(None, 0, 0))(params, x, y).mean(), params.values()
    )
    looped = torch.autograd.grad(
        torch.stack([one_task(params, x[t], y[t]) for t in range(len(x))]).mean(), params.values()
    )
    for a, b in zip(outer, looped, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(SEQUENCE_ENCODERS))
def test_no_transform_unsafe_layers(name):
    """No batch statistics or dropout (per-sample, deterministic under vmap), and no fused
    ``nn.LayerNorm`` (wrong second derivatives under vmap in torch 2.13)."""
    enc = build_encoder(EncoderConfig(name=name), N_BANDS, N_STEPS)
    unsafe = (torch.nn.modules.batchnorm._NormBase, torch.nn.Dropout, torch.nn.LayerNorm)
    assert not [m for m in enc.modules() if isinstance(m, unsafe)]
