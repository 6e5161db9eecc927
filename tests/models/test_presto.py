"""Presto (Tseng et al., 2023): the published weights reproduce the reference embeddings, the
inputs are mapped from cropmeta's bands and grid, and Presto serves as a meta-trainable encoder
and as frozen-embedding baselines that save and load like every model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.func import functional_call, grad, vmap

from cropmeta.baselines.pooled import SourcePool
from cropmeta.baselines.presto import presto_forest, presto_linear, region_latlon
from cropmeta.errors import InputError
from cropmeta.fileinfo import sha256
from cropmeta.ingest.prepare import Normaliser, Preparation, TemporalGrid
from cropmeta.models.bundle import BundleConfig, ClassInfo, load_bundle, save_bundle
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.presto import (
    BANDS,
    FIXED,
    PREFIX,
    WEIGHTS,
    WEIGHTS_SHA256,
    cartesian,
    load_presto,
    read_weights,
)
from cropmeta.models.presto_inputs import band_map, monthly, presto_embeddings

SHARED_PRESTO = Path(__file__).resolve().parents[3] / "shared" / "models" / "presto"
NDVI_BY_MONTH = [0.15, 0.18, 0.25, 0.45, 0.70, 0.82, 0.78, 0.60, 0.40, 0.25, 0.18, 0.15]
S2 = {"B2": 0.04, "B3": 0.07, "B4": 0.05, "B5": 0.11, "B6": 0.25, "B7": 0.30, "B8": 0.32,
      "B8A": 0.33, "B11": 0.20, "B12": 0.12}  # fmt: skip
S2_NDVI = (0.32 - 0.05) / (0.32 + 0.05)
#: ../shared/models/presto/README.md: L2 norm, sum and first 8 values of the reference
#: implementation's embedding (float32, CPU, 1 thread).
REFERENCE = {
    "ref1": (12.356164, -3.686662,
             [-1.22288, -1.051878, 0.679654, 1.161881, 0.98827, -1.176981, -0.67164, 0.247552]),
    "ref2": (13.259108, -5.585520,
             [-1.144113, -5.267283, 1.64381, 1.02313, -1.949288, 0.886669, -0.927748, 0.193588]),
}  # fmt: skip
MID_MONTH = np.array([15, 46, 74, 105, 135, 166, 196, 227, 258, 288, 319, 349])


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_reference(embedding: torch.Tensor, name: str) -> None:
    norm, total, first = REFERENCE[name]
    assert embedding.shape == (128,)
    assert abs(embedding.norm().item() - norm) < 1e-4
    assert abs(embedding.sum().item() - total) < 1e-4
    np.testing.assert_allclose(embedding[:8].numpy(), first, atol=1e-4, rtol=0)


def reference_input(name: str) -> tuple[torch.Tensor, torch.Tensor, int, tuple[float, float]]:
    """The README's inputs: x (1, 12, 17) normalised, mask (True = missing), month, lat/lon."""
    values = {"NDVI": NDVI_BY_MONTH} if name == "ref1" else {**S2, "NDVI": S2_NDVI}
    x, mask = torch.zeros(1, 12, len(BANDS)), torch.ones(1, 12, len(BANDS), dtype=torch.bool)
    for band, v in values.items():
        x[0, :, BANDS.index(band)] = torch.as_tensor(v)
        mask[0, :, BANDS.index(band)] = False
    return (x, mask, 0, (40.0, 70.0)) if name == "ref1" else (x, mask, 2, (48.5, 2.0))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_embeddings(name):
    x, mask, month, (lat, lon) = reference_input(name)
    where = cartesian(torch.tensor([lat]), torch.tensor([lon]))
    dynamic_world = torch.full((1, 12), 9)  # missing every month
    with torch.no_grad():
        emb = load_presto()(x, mask, month, where, dynamic_world)
    assert_reference(emb[0], name)


def test_reference_embeddings_from_cropmeta_series():
    """The same inputs as prepared cropmeta series: one step per month (mid-month), band names
    as cropmeta spells them, S2 in reflectance; ref2's season starts in March."""
    ndvi = np.array(NDVI_BY_MONTH, np.float32)[None, :, None]
    assert_reference(presto_embeddings(ndvi, ["ndvi"], MID_MONTH, (40.0, 70.0))[0], "ref1")
    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "NDVI"]
    series = np.tile(np.array([*S2.values(), S2_NDVI], np.float32), (1, 12, 1))
    march_on = np.roll(MID_MONTH, -2)  # March … February, across New Year
    assert_reference(presto_embeddings(series, bands, march_on, (48.5, 2.0))[0], "ref2")


def test_dropped_and_masked_tokens_give_the_same_embedding():
    """Groups left out, or masked per sample, are the reference's dropped tokens."""
    x, mask, month, _ = reference_input("ref2")
    x = x.repeat(2, 1, 1) + 0.01 * torch.randn(2, 12, len(BANDS))
    presto = load_presto()
    with torch.no_grad():
        fed = presto(x, mask, month, groups=("S2_RGB", "S2_Red_Edge", "S2_NIR_10m", "NDVI"))
        mask2 = mask.repeat(2, 1, 1)
        mask2[:, :, [BANDS.index(b) for b in ("B8A", "B11")]] = True  # S2_NIR_20m, S2_SWIR
        masked = presto(x, mask2, month)
        mask2[1, 4:, :] = True  # the second sample: months 5 to 12 missing
        mixed = presto(x, mask2, month)
        alone = presto(x[1:], mask2[1:], month)
    torch.testing.assert_close(fed, masked, atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed, torch.cat([masked[:1], alone]), atol=1e-5, rtol=0)


def test_packaged_weights_are_the_published_encoder():
    assert sha256(WEIGHTS) == WEIGHTS_SHA256
    for name in ("LICENSE", "README.md"):
        assert (WEIGHTS.parent / name).is_file()
    if not SHARED_PRESTO.is_dir():
        pytest.skip(f"the published weights are absent: {SHARED_PRESTO}")
    published = load_file(str(SHARED_PRESTO / "presto.safetensors"))
    packaged = load_file(str(WEIGHTS))
    encoder = {k: v for k, v in published.items() if k.startswith(PREFIX)}
    assert sorted(packaged) == sorted(encoder)  # every encoder tensor, no decoder
    assert all(torch.equal(packaged[k], encoder[k]) for k in encoder)
    presto = load_presto()
    state = presto.state_dict() | {name: presto.get_buffer(name) for name in FIXED}
    assert sorted(state) == sorted(k[len(PREFIX) :] for k in encoder)
    assert all(torch.equal(state[k[len(PREFIX) :]], v) for k, v in encoder.items())


def test_damaged_or_missing_weights_are_refused(tmp_path):
    damaged = tmp_path / "presto-encoder.safetensors"
    shutil.copyfile(WEIGHTS, damaged)
    with open(damaged, "r+b") as f:
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(InputError, match="damaged or replaced"):
        read_weights(damaged)
    with pytest.raises(InputError, match="not found"):
        load_presto(tmp_path / "absent.safetensors")


def test_band_mapping():
    ndvi = band_map(["NDVI"])
    assert ndvi.groups == ("NDVI",) and ndvi.source[BANDS.index("NDVI")] == 0
    assert sum(i >= 0 for i in ndvi.source) == 1 and not ndvi.notes
    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "NDVI"]
    full = band_map(bands)
    assert full.groups == (
        "S2_RGB", "S2_Red_Edge", "S2_NIR_10m", "S2_NIR_20m", "S2_SWIR", "NDVI"
    )  # fmt: skip
    assert [BANDS[j] for j, i in enumerate(full.source) if i >= 0] == list(BANDS[2:12]) + ["NDVI"]
    assert full.source[BANDS.index("B8A")] == 7 and full.source[BANDS.index("B2")] == 0
    odd = band_map(["evi", "ndvi", "b8a", "Blue", "b4"])  # unknown ignored, case ignored
    assert odd.groups == ("S2_NIR_20m", "NDVI")
    assert odd.source[BANDS.index("NDVI")] == 1 and odd.source[BANDS.index("B8A")] == 2
    assert any("evi, Blue" in note for note in odd.notes)
    assert any(note.startswith("S2_RGB masked: B2, B3") for note in odd.notes)
    with pytest.raises(ValueError, match="completes a Presto channel group"):
        band_map(["EVI", "B04"])


def test_monthly_means_on_a_ten_day_grid():
    doy = torch.from_numpy(TemporalGrid(start_doy=60, end_doy=300, step=10).doys())
    weights, valid, first = monthly(doy)
    assert int(first) == 2  # day 60 is 1 March
    assert valid.tolist() == [True] * 8 + [False] * 4  # March-October; the rest is masked
    days = weights.double() @ doy.double()  # each month's mean day of year
    # March: days 60-90 (4 steps); April: 100-120 (3) … October: 280-300 (3)
    expected = [75, 110, 140, 170, 200, 230, 260, 290, 0, 0, 0, 0]
    np.testing.assert_allclose(days.numpy(), expected, atol=1e-4)
    torch.testing.assert_close(weights.sum(1), valid.float())
    # a 45-day grid skips March: its value is halfway between February's and April's
    weights, valid, first = monthly(torch.tensor([1, 46, 91, 136]))
    assert int(first) == 0 and valid.tolist() == [True] * 5 + [False] * 7
    torch.testing.assert_close(weights[2], (weights[1] + weights[3]) / 2)


def presto_classifier(bands: list[str], n_steps: int) -> CropClassifier:
    norm = Normaliser(mean=[0.1] * len(bands), std=[0.2] * len(bands))
    cfg = EncoderConfig(name="presto", bands=bands, normaliser=norm)
    assert cfg.embed == 128
    return CropClassifier(len(bands), n_steps, cfg, n_classes=3)


def test_presto_encoder_is_pretrained_and_functional():
    """Built from the published weights; per-task gradients under vmap equal the loop's."""
    doy = torch.from_numpy(TemporalGrid().doys())
    model = presto_classifier(["B04", "B08", "NDVI"], len(doy))
    presto = model.encoder.presto
    state = presto.state_dict() | {name: presto.get_buffer(name) for name in FIXED}
    assert all(torch.equal(state[k], v) for k, v in read_weights().items())
    with pytest.raises(ValueError, match="needs the band names"):
        CropClassifier(3, len(doy), EncoderConfig(name="presto"))
    params = {k: v.detach() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 5, len(doy), 3, generator=g), torch.randint(0, 3, (2, 5), generator=g)

    def loss(p, xt, yt):
        return F.cross_entropy(functional_call(model, p, (xt, doy)), yt)

    batched = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for t in range(len(x)):
        looped = grad(loss)(params, x[t], y[t])
        for k in params:
            torch.testing.assert_close(batched[k][t], looped[k], atol=1e-5, rtol=1e-4)
    assert batched["encoder.presto.blocks.0.attn.qkv.weight"].abs().sum() > 0  # trainable


def phenology(n_per_class: int, seed: int, doy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Three crops greening up at different days: red, NIR and NDVI series (sample, step, 3)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, peak in enumerate((130.0, 190.0, 250.0)):
        centre = peak + 8 * rng.standard_normal((n_per_class, 1))
        green = np.exp(-0.5 * ((doy[None, :] - centre) / 25) ** 2)
        red = 0.12 - 0.08 * green + 0.005 * rng.standard_normal(green.shape)
        nir = 0.2 + 0.3 * green + 0.01 * rng.standard_normal(green.shape)
        xs.append(np.stack([red, nir, (nir - red) / (nir + red)], -1))
        ys.append(np.full(n_per_class, label))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


@pytest.mark.parametrize("fit", [presto_forest, presto_linear])
def test_frozen_presto_baselines_fit_predict_and_round_trip(fit, tmp_path):
    grid = TemporalGrid()
    doy = grid.doys()
    bands, codes = ["B04", "B08", "NDVI"], [11, 22, 33]
    x_raw, y = phenology(4, seed=1, doy=doy)
    x_test, y_test = phenology(20, seed=2, doy=doy)
    src_raw, src_y = phenology(15, seed=3, doy=doy)
    norm = Normaliser.fit(src_raw)
    shots = (torch.from_numpy(norm(x_raw)), torch.from_numpy(y))
    day, query = torch.from_numpy(doy), torch.from_numpy(norm(x_test))
    pool = SourcePool(torch.from_numpy(norm(src_raw)), np.array(codes)[src_y], shot_weight=3.0)
    for source in (None, pool):
        model = fit(*shots, day, codes, bands, norm, (49.6, 34.5), seed=0, pool=source)
        with torch.no_grad():
            scores = model(query, day)
        assert scores.shape == (60, 3) and scores.dtype == torch.float32
        torch.testing.assert_close(scores.exp().sum(1), torch.ones(60))
        accuracy = (scores.argmax(1).numpy() == y_test).mean()
        assert accuracy > 0.6, f"{fit.__name__}: accuracy {accuracy:.2f} (chance 0.33)"
    prep = Preparation(bands=bands, grid=grid)
    classes = [ClassInfo(code=c, name=str(c)) for c in codes]
    cfg = BundleConfig(
        kind="adapted", preparation=prep, normaliser=norm, encoder=EncoderConfig(), classes=classes
    )
    out = save_bundle(model, cfg, tmp_path / "model")
    stored = load_file(str(out / "model.safetensors"))
    assert stored and not any(k.startswith("features.") for k in stored)  # the head only
    loaded, loaded_cfg = load_bundle(out)
    assert loaded_cfg.head.kind == "presto" and loaded_cfg.head.latlon == (49.6, 34.5)
    with torch.no_grad():
        assert torch.equal(loaded(query, day), scores)
    config = out / "config.json"  # a head fitted on other Presto weights is refused
    config.write_text(config.read_text().replace(WEIGHTS_SHA256, "0" * 64))
    with pytest.raises(InputError, match="other Presto weights"):
        load_bundle(out)


@pytest.mark.slow
def test_meta_train_and_adapt_with_the_presto_encoder(cli, regions, catalog, tmp_path):
    """Meta-training with the presto encoder (2 iterations, what `meta-train --encoder presto`
    runs, without the baselines' source classifier: 30 s more) on the tiny world, then `adapt`:
    the encoder starts from Presto's weights, is trained, and maps the target."""
    from cropmeta.cli.options import Encoder
    from cropmeta.ingest.dataset import RegionArrays
    from cropmeta.learners.meta_train import MetaTrainConfig, meta_train

    assert "presto" in [e.value for e in Encoder]  # the CLI offers presto
    sources = [regions[r.name] for r in catalog.sources()]
    target = regions[catalog.targets()[0].name]
    meta, adapted = tmp_path / "meta", tmp_path / "adapted"
    cfg = MetaTrainConfig(
        encoder={"name": "presto"}, iterations=2, n_way=3, k_shot=2, q_query=2, meta_batch=2,
        baselines=False,
    )  # fmt: skip
    meta_train(sources, meta, cfg, seed=0)
    model, cfg = load_bundle(meta)
    assert cfg.encoder.name == "presto" and cfg.encoder.bands == cfg.preparation.bands
    assert cfg.encoder.normaliser == cfg.normaliser
    trained = model.encoder.presto.state_dict()
    assert any(not torch.equal(trained[k], read_weights()[k]) for k in trained)
    res = cli(
        "adapt", "--model", meta, "--region", target, "--out", adapted, "--method", "maml"
    )  # fmt: skip  (the fine-tuned Presto encoder, not the pick)
    assert res.exit_code == 0, res.output
    model, cfg = load_bundle(adapted)
    assert cfg.encoder.name == "presto"
    data = RegionArrays.load(target)
    with torch.no_grad():
        scores = model(torch.from_numpy(cfg.normaliser(data.x[:5])), torch.from_numpy(data.doy))
    assert scores.shape == (5, len(cfg.classes)) and torch.isfinite(scores).all()
    assert region_latlon(target) is not None
