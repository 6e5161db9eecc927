"""`cropmeta suggest-labels`: which unlabelled fields to label first, and whether that choice
beats a random one (`compare_with_random`), on the tiny world's first target region."""

from __future__ import annotations

import json
import math
import shutil

import geopandas as gpd
import numpy as np
import pytest
import shapely
from checks import assert_one_line_error

from cropmeta.evaluate.label_budget import compare_with_random
from cropmeta.ingest.dataset import open_region
from cropmeta.ingest.sources import open_raster
from cropmeta.mapping.fields import read_polygons
from cropmeta.mapping.suggest import (
    LAYER,
    coverage_radius,
    embed_series,
    field_series,
    load_meta_model,
    select_fields,
    suggest_labels,
)

BUDGET = 8


@pytest.fixture(scope="module")
def target(world, catalog):
    """(name, tiles folder, fields GeoPackage) of the first target region."""
    entry = catalog.targets()[0]
    return entry.name, catalog.path(entry.tiles), world.parent / entry.name / "fields.gpkg"


@pytest.fixture(scope="module")
def embedded(meta_model, target):
    """Every field of the target through the module's own steps: series, usable, embedding."""
    _, tiles, fields = target
    model, cfg = load_meta_model(meta_model)
    stack = open_raster(tiles)
    series = field_series(stack, read_polygons(fields, stack.crs, "fields"), cfg.preparation)
    usable = np.flatnonzero(series.usable)
    return series, usable, embed_series(model, cfg, series.x[usable])


@pytest.fixture(scope="module")
def suggested(cli, meta_model, target, tmp_path_factory):
    _, tiles, fields = target
    out = tmp_path_factory.mktemp("suggest") / "suggested.gpkg"
    res = cli(
        "suggest-labels",
        "--model",
        meta_model,
        "--fields",
        fields,
        "--tiles",
        tiles,
        "--budget",
        BUDGET,
        "--out",
        out,
        "--seed",
        0,
    )
    assert res.exit_code == 0, res.output
    return out


def test_cli_writes_the_chosen_fields_unchanged_in_priority_order(suggested, target, embedded):
    _, _, fields = target
    src = gpd.read_file(fields)
    out = gpd.read_file(suggested, layer=LAYER)
    assert len(out) == BUDGET
    assert out["priority"].tolist() == list(range(1, BUDGET + 1))
    rows = out["source_index"].to_numpy()
    assert len(set(rows.tolist())) == BUDGET
    assert out.crs == src.crs
    for geom, row in zip(out.geometry, rows, strict=True):
        assert shapely.equals_exact(geom, src.geometry.iloc[row], tolerance=0)
    for col in src.columns.drop(src.geometry.name):
        assert out[col].tolist() == src[col].iloc[rows].tolist()
    # The CLI's choice is the pipeline's: usable fields, embedded, chosen by k-center.
    series, usable, z = embedded
    assert series.usable[rows].all()
    np.testing.assert_array_equal(rows, usable[select_fields(z, BUDGET, 0).order])
    # Every usable field is represented by exactly one suggestion.
    assert out["represents"].sum() == len(usable) and (out["represents"] >= 1).all()
    assert (out["distance_to_nearest_chosen"] > 0).all()
    assert (out["coverage_radius"] >= 0).all() and (out["pixels"] >= 4).all()


def test_unlabelled_series_are_the_preprocessed_series(embedded, target, regions):
    """The same code path as training data: fields that preprocess kept get the same series."""
    name, _, fields = target
    series, _, _ = embedded
    ds = open_region(regions[name])
    ids = gpd.read_file(fields)["field_id"].to_numpy()
    row_of = {int(i): r for r, i in enumerate(ids)}
    rows = np.array([row_of[int(i)] for i in ds["field_id"].values])
    assert series.usable[rows].all()
    np.testing.assert_allclose(series.x[rows], ds["x"].values, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["kcenter", "kmeans"])
def test_choice_is_deterministic_and_distinct(embedded, method):
    _, _, z = embedded
    a = select_fields(z, BUDGET, seed=5, method=method)
    b = select_fields(z, BUDGET, seed=5, method=method)
    np.testing.assert_array_equal(a.order, b.order)
    assert len(set(a.order.tolist())) == BUDGET
    assert a.represents.sum() == len(z)


def test_kcenter_is_nested_and_within_twice_any_choice(embedded):
    """Greedy k-center's guarantees: the priority order is nested (the first n suggestions are
    the choice for budget n) and its covering radius is at most twice the optimum, hence at
    most twice that of any choice of the same size, random ones included."""
    _, _, z = embedded
    full = select_fields(z, BUDGET).order
    for n in (1, 3, BUDGET - 1):
        np.testing.assert_array_equal(select_fields(z, n).order, full[:n])
    greedy = coverage_radius(z, full)
    rng = np.random.default_rng(0)
    for _ in range(50):
        other = rng.choice(len(z), BUDGET, replace=False)
        assert greedy <= 2 * coverage_radius(z, other) + 1e-9


@pytest.mark.parametrize("method", ["kcenter", "kmeans"])
def test_separated_clusters_get_one_suggestion_each(method):
    """Five tight, far-apart clusters of very different sizes (one a single point, a rare
    crop): a budget of five covers each exactly once."""
    rng = np.random.default_rng(1)
    sizes = [40, 20, 8, 3, 1]
    centres = rng.normal(size=(5, 16)) * 100
    z = np.concatenate(
        [c + rng.normal(size=(n, 16)) * 0.1 for c, n in zip(centres, sizes, strict=True)]
    )
    cluster = np.repeat(np.arange(5), sizes)
    sel = select_fields(z, 5, seed=0, method=method)
    assert sorted(cluster[sel.order].tolist()) == [0, 1, 2, 3, 4]
    assert sorted(sel.represents.tolist()) == sorted(sizes)
    if method == "kmeans":  # typical fields first: largest cluster first
        assert cluster[sel.order].tolist() == [0, 1, 2, 3, 4]


def test_fields_in_another_crs_come_back_in_it(meta_model, target, tmp_path):
    _, tiles, fields = target
    lonlat = gpd.read_file(fields).to_crs("EPSG:4326")
    path = tmp_path / "fields-4326.gpkg"
    lonlat.to_file(path, driver="GPKG")
    out = suggest_labels(meta_model, path, tiles, 3, tmp_path / "s.gpkg", method="kmeans")
    back = gpd.read_file(tmp_path / "s.gpkg", layer=LAYER)
    assert back.crs == lonlat.crs and len(back) == len(out) == 3
    for geom, row in zip(back.geometry, back["source_index"], strict=True):
        assert shapely.equals_exact(geom, lonlat.geometry.iloc[row], tolerance=0)


def _points(src, tmp_path):
    path = tmp_path / "points.gpkg"
    pts = src.copy()
    pts["geometry"] = src.geometry.centroid
    pts.to_file(path, driver="GPKG")
    return path


def _far_away(src, tmp_path):
    path = tmp_path / "far.gpkg"
    src.set_geometry(src.geometry.translate(1e6, 1e6)).to_file(path, driver="GPKG")
    return path


def _adapted_copy(meta_model, tmp_path):
    model = tmp_path / "adapted-model"
    shutil.copytree(meta_model, model)
    cfg = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(cfg | {"kind": "adapted"}))
    return model


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing fields", "fields file not found"),
        ("points", "fields must be polygons"),
        ("budget 0", "--budget: Input should be greater than or equal to 1"),
        ("budget too large", "exceeds the number of fields"),
        ("adapted model", "not a meta-trained model"),
        ("no overlap", "no field polygon overlaps the raster"),
        ("missing tiles", "tile folder not found"),
        ("unknown method", "--method: 'entropy' is not one of 'kcenter', 'kmeans'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, meta_model, target, tmp_path, case, fragment):
    _, tiles, fields = target
    src = gpd.read_file(fields)
    args = {
        "--model": meta_model,
        "--fields": fields,
        "--tiles": tiles,
        "--budget": 3,
        "--method": "kcenter",
    }
    if case == "missing fields":
        args["--fields"] = tmp_path / "nothing.gpkg"
    elif case == "points":
        args["--fields"] = _points(src, tmp_path)
    elif case == "budget 0":
        args["--budget"] = 0
    elif case == "budget too large":
        args["--budget"] = len(src) + 1
    elif case == "adapted model":
        args["--model"] = _adapted_copy(meta_model, tmp_path)
    elif case == "no overlap":
        args["--fields"] = _far_away(src, tmp_path)
    elif case == "missing tiles":
        args["--tiles"] = tmp_path / "no-tiles"
    elif case == "unknown method":
        args["--method"] = "entropy"
    out = tmp_path / "suggested.gpkg"
    flat = [str(a) for kv in args.items() for a in kv]
    assert_one_line_error(cli("suggest-labels", *flat, "--out", out), out, fragment)


def test_compare_with_random_returns_finite_scores(meta_model, regions, target):
    name, _, _ = target
    res = compare_with_random(meta_model, regions[name], 10, seeds=[0, 1])
    assert res["budget"] == 10 and res["seeds"] == [0, 1] and len(res["runs"]) == 2
    n = res["n_samples"]
    for run in res["runs"]:
        for choice in ("criterion", "random"):
            r = run[choice]
            assert len(set(r["indices"])) == 10 and r["n_query"] == n - 10
            assert 1 <= r["classes_covered"] <= res["n_classes"]
            assert all(math.isfinite(r[k]) for k in ("overall_accuracy", "macro_f1"))
            assert 0 <= r["overall_accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1
    for choice in ("criterion", "random"):
        assert all(math.isfinite(res["mean"][choice][k]) for k in ("overall_accuracy", "macro_f1"))
    assert math.isfinite(res["difference"]["overall_accuracy"])
    json.dumps(res)  # plain types, ready for a report
