"""End to end: `cropmeta demo` on the tiny world, through the installed console script."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from digests import RECORDED, demo_digests
from rasterio.features import rasterize

from cropmeta.catalog import load_catalog
from cropmeta.taxonomy import load_taxonomy

pytestmark = pytest.mark.slow  # the whole demo, through the console script


def test_demo_end_to_end(tmp_path):
    exe = shutil.which("cropmeta") or str(Path(sys.executable).with_name("cropmeta"))
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            exe,
            "demo",
            "--out",
            str(out),
            "--scale",
            "tiny",
            "--iterations",
            "80",
            "--seed",
            "1",
            "--shots",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        # one thread, as in-process tests: oversubscribed OpenMP threads slow torch tenfold
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    catalog = load_catalog(out / "world" / "catalog.yaml")
    target = catalog.targets()[0]

    # the map has the target tiles' grid
    with (
        rasterio.open(summary["map"]) as m,
        rasterio.open(next(catalog.path(target.tiles).glob("*.tif"))) as ref,
    ):
        assert (m.crs, m.transform, m.shape) == (ref.crs, ref.transform, ref.shape)
        crop_map = m.read(1)

    for figure in summary["figures"]:
        assert Path(figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the adapted model beats chance clearly (twice its rate) on the held-out fields; the tiny
    # world is too small for meta-learning to beat the baselines reliably (see BENCHMARKS.md)
    for name, result in summary["targets"].items():
        chance = 1 / len(result["classes"])
        assert result["metrics"]["maml"]["overall_accuracy"] > 2 * chance, (name, result)

    # and the map agrees with the field labels well beyond chance (pixel majority per field)
    fields = gpd.read_file(catalog.path(target.labels))
    tax = load_taxonomy()
    codes = np.array([tax.resolve(x).code for x in fields[target.label_column]])
    ids = rasterize(
        ((g, i + 1) for i, g in enumerate(fields.geometry)),
        out_shape=crop_map.shape,
        transform=ref.transform,
        dtype="int32",
    )
    agree = []
    for i, code in enumerate(codes, start=1):
        px = crop_map[(ids == i) & (crop_map > 0)]
        if len(px):
            agree.append(np.bincount(px).argmax() == code)
    chance = 1 / len(set(codes))
    assert np.mean(agree) > chance + 0.25

    # and the land between the fields is non-crop, the fields are crops (the world's truth)
    from cropmeta.synth import fields as kinds
    from cropmeta.synth.world import land_cover

    truth = land_cover(target.name, seed=1, scale="tiny")
    non_crop = tax.resolve("non_crop").code
    classified = crop_map > 0
    field_land = (truth == kinds.FIELD) & classified
    other_land = np.isin(truth, [kinds.FOREST, kinds.VILLAGE, kinds.WATER, kinds.ROAD, 255])
    other_land &= classified
    assert (crop_map[field_land] == non_crop).mean() < 0.1
    assert (crop_map[other_land] == non_crop).mean() > 0.6

    # no behaviour change (issue 20): the region datasets are the ones recorded before the
    # house was restructured, to the bit. The map is not compared bit for bit: it comes from
    # trained networks, and the recorded map's digest, matched by every CI run until then,
    # differed on 2026-12-08 on another machine of the same kind (AMD EPYC, torch's AVX2
    # kernels) with the same code and libraries; its behaviour is checked above instead.
    recorded = json.loads(RECORDED.read_text())
    regions = {name: digest for name, digest in recorded.items() if name.startswith("regions/")}
    assert {n: d for n, d in demo_digests(out).items() if n in regions} == regions
