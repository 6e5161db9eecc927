"""Simulated regions (cropmeta.tasks.augment): per-task phenology shift and band gain / offset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cropmeta.ingest.prepare import TemporalGrid
from cropmeta.tasks.augment import RegionEffects, TaskAugmentation
from cropmeta.tasks.episodes import EpisodeSampler, LabelledSet

YEAR = TemporalGrid(start_doy=1, end_doy=361, step=8)  # 46 steps: gee-tsda's full-year grid
SEASON = TemporalGrid(start_doy=60, end_doy=300, step=10)  # 25 steps: a growing season


def ramp(n: int, steps: int, bands: int = 2) -> np.ndarray:
    """Series whose value at each step is that step's index, plus the band number / 10."""
    t = np.arange(steps, dtype=np.float32)[None, :, None]
    return np.broadcast_to(t + np.arange(bands)[None, None, :] / 10, (n, steps, bands)).copy()


def test_a_full_year_shifts_cyclically_a_season_holds_its_ends():
    year = RegionEffects(TaskAugmentation(shift_days=16), YEAR)
    assert year.cyclic and year.time_index(2)[:3].tolist() == [44, 45, 0]
    assert year.time_index(-1)[-2:].tolist() == [45, 0]
    season = RegionEffects(TaskAugmentation(shift_days=20), SEASON)
    assert not season.cyclic
    assert season.time_index(2)[:4].tolist() == [0, 0, 0, 1]
    assert season.time_index(-2)[-3:].tolist() == [24, 24, 24]


def test_one_draw_moves_support_and_query_alike():
    cfg = TaskAugmentation(shift_days=60, gain=0.3, offset=0.5)
    effects = RegionEffects(cfg, YEAR)
    x = ramp(4, len(YEAR))
    out_s, out_q = effects(np.random.default_rng(3), x, x[:2])
    np.testing.assert_array_equal(out_s[:2], out_q)  # the same region effects on both sets
    assert out_s.dtype == x.dtype and out_s.shape == x.shape
    # each band is an affine image of the ramp rolled by whole steps: recover the roll, the
    # gain and the offset of each band and check them against the bounds
    steps, shifts = len(YEAR), set()
    for b in range(2):
        series = out_s[0, :, b].astype(np.float64)
        gain = float(np.median(np.diff(series)))  # the ramp rises by 1 a step, except at the wrap
        index = np.round((series - series.min()) / gain).astype(int)
        assert sorted(index) == list(range(steps))  # a permutation of the steps: a pure roll
        shift = int(-index[0] % steps)
        np.testing.assert_array_equal(index, np.roll(np.arange(steps), shift))
        offset = series[0] - gain * (index[0] + b / 10)
        assert abs(gain - 1) <= 0.3 and abs(offset) <= 0.5 + 1e-5
        shifts.add(min(shift, steps - shift) * 8)
    assert len(shifts) == 1 and shifts.pop() <= 60 + 4  # one shift for all bands, within ±60 d


def region_sets(steps: int) -> list[LabelledSet]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, steps, 2)).astype(np.float32)
    return [LabelledSet("r", x, np.repeat(np.arange(4), 15))]


def test_the_sampler_stays_deterministic_and_untouched_when_off():
    sets = region_sets(len(YEAR))
    plain = EpisodeSampler(sets, 3, 2, 3, seed=5).sample(4)
    effects = RegionEffects(TaskAugmentation(), YEAR)
    off = EpisodeSampler(sets, 3, 2, 3, seed=5, transform=effects).sample(4)
    assert torch.equal(plain.x_s, off.x_s) and torch.equal(plain.x_q, off.x_q)
    effects = RegionEffects(TaskAugmentation(shift_days=90, gain=0.2, offset=0.2), YEAR)
    a = EpisodeSampler(sets, 3, 2, 3, seed=5, transform=effects).sample(4)
    b = EpisodeSampler(sets, 3, 2, 3, seed=5, transform=effects).sample(4)
    assert torch.equal(a.x_s, b.x_s) and torch.equal(a.x_q, b.x_q)
    assert not torch.equal(a.x_s, plain.x_s)
    assert torch.equal(a.y_s, plain.y_s)  # labels are never touched


@pytest.mark.slow
def test_meta_train_augments_training_tasks_only(regions, catalog, tmp_path):
    """The setting reaches the sampler of the training tasks, is recorded, and changes the
    model; the validation tasks are the unaugmented ones."""
    from cropmeta.learners import meta_train as mt

    seen = []
    real = mt.EpisodeSampler

    def spy(*args, **kwargs):
        sampler = real(*args, **kwargs)
        seen.append(sampler.transform)
        return sampler

    cfg = mt.MetaTrainConfig(iterations=3, n_way=3, k_shot=2, q_query=3, val_every=3, val_tasks=2)
    srcs = [regions[r.name] for r in catalog.sources()]
    aug = cfg.model_copy(update={"augment": TaskAugmentation(shift_days=30, gain=0.1)})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mt, "EpisodeSampler", spy)
        plain = mt.meta_train(srcs, tmp_path / "plain", cfg, seed=1)
        shifted = mt.meta_train(srcs, tmp_path / "aug", aug, seed=1)
    transforms = [t for t in seen if t is not None]
    assert len(transforms) == 1 and transforms[0].cfg.shift_days == 30  # training tasks only
    config = json.loads((shifted / "config.json").read_text())
    assert config["history"]["config"]["augment"] == {"shift_days": 30, "gain": 0.1, "offset": 0.0}
    from safetensors.torch import load_file

    a, b = (load_file(str(p / "model.safetensors")) for p in (plain, shifted))
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_meta_train_cli_takes_the_augmentation(cli, regions, catalog, tmp_path):
    a, b, *_ = [regions[r.name] for r in catalog.sources()]
    args = ["meta-train", "--region", a, "--region", b, "--iterations", "2", "--ways", "3"]
    args += ["--shots", "2", "--queries", "2", "--task-shift-days", "20", "--task-offset", "0.1"]
    res = cli(*args, "--out", tmp_path / "m")
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["history"]["config"]["augment"]["shift_days"] == 20
    bad = cli(*args[:-4], "--task-shift-days", "400", "--out", tmp_path / "bad")
    assert bad.exit_code == 2 and "--task-shift-days" in bad.output
    assert not (tmp_path / "bad").exists()


def test_evaluate_takes_the_augmentation(cli, world, tmp_path):
    out = tmp_path / "e"
    res = cli("evaluate", "--catalog", world, "--out", out, "--task-gain", "1.5")
    assert res.exit_code == 2 and "--task-gain" in res.output and not out.exists()


def test_evaluate_passes_the_augmentation_and_validation_regions_on(cli, world, tmp_path):
    import cropmeta.evaluate.evaluation as evaluation

    seen = {}

    def capture(catalog, out, cfg, seed, progress, overwrite=False, **_):
        seen["meta"] = cfg.meta
        return out / "report.md"

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "evaluate_catalog", capture)
        res = cli("evaluate", "--catalog", world, "--out", tmp_path / "e",
                  "--task-shift-days", "45", "--task-gain", "0.1", "--task-offset", "0.2",
                  "--val-region", "beauce", "--augment-baselines")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert seen["meta"].augment == TaskAugmentation(shift_days=45, gain=0.1, offset=0.2)
    assert seen["meta"].val_regions == ["beauce"]
    assert seen["meta"].augment_baselines


def test_augmenting_the_baselines_changes_only_their_source_classifier(regions, catalog, tmp_path):
    """`augment_baselines` pre-trains the transfer classifier on simulated regions: its tensors
    change, reproducibly, while the meta-learner's stay those of the same augmented run."""
    from safetensors.torch import load_file

    from cropmeta.learners.meta_train import MetaTrainConfig, meta_train

    srcs = [regions[r.name] for r in catalog.sources()]
    aug = TaskAugmentation(shift_days=30, gain=0.1, offset=0.1)
    cfg = MetaTrainConfig(iterations=2, n_way=3, k_shot=2, q_query=3, val_every=2, val_tasks=2,
                          algorithm="protonet", augment=aug)  # fmt: skip
    both = cfg.model_copy(update={"augment_baselines": True})
    a, b, c = (
        load_file(str(meta_train(srcs, tmp_path / name, c, seed=1) / "model.safetensors"))
        for name, c in (("a", cfg), ("b", both), ("c", both))
    )
    part = [k for k in a if k.startswith("transfer.")]
    assert part and all(torch.equal(b[k], c[k]) for k in b)  # deterministic
    assert not all(torch.equal(a[k], b[k]) for k in part)
    assert all(torch.equal(a[k], b[k]) for k in a if k not in part)


def test_augmenting_the_baselines_needs_an_augmentation(cli, world, tmp_path):
    from pydantic import ValidationError

    from cropmeta.learners.meta_train import MetaTrainConfig

    with pytest.raises(ValidationError, match="augment_baselines needs an active augment"):
        MetaTrainConfig(augment_baselines=True)
    out = tmp_path / "e"
    res = cli("evaluate", "--catalog", world, "--out", out, "--augment-baselines")
    assert res.exit_code == 2 and "--task-shift-days" in res.output and not out.exists()
