"""The real data sets in ../shared/data through the CLI: catalog regions → datasets → models → map.

Skipped with a reason when ../shared/data is absent (a user's fresh clone has no ../shared).
"""

import json
from pathlib import Path

import pytest
import rasterio
import xarray as xr

from cropmeta.baselines.names import BASELINES
from cropmeta.taxonomy import CATALOG_DIR

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CATALOG = CATALOG_DIR / "shared-data.yaml"
pytestmark = [
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data absent: {SHARED}"),
    pytest.mark.slow,  # real data sets through every stage
]


def test_sinop_cube_with_points_preprocesses_with_its_custom_crs(cli, tmp_path):
    out = tmp_path / "sinop.zarr"
    res = cli("preprocess", "--catalog", CATALOG, "--region", "sinop", "--out", out)
    assert res.exit_code == 0, res.output
    ds = xr.open_zarr(out)
    summary = json.loads(ds.attrs["summary"])
    assert summary["samples"] == 12 and summary["outside_tiles"] == 6
    with rasterio.open(next((SHARED / "sinop-modis-cube").glob("MODIS_Sinop_NDVI_*.tif"))) as src:
        assert rasterio.crs.CRS.from_wkt(ds.attrs["crs"]) == src.crs
        assert src.crs.to_epsg() is None
    assert float(ds["x"].min()) > -0.2 and float(ds["x"].max()) <= 1.0  # ×10000 scaled away


def test_table_regions_meta_train_and_adapt(cli, tmp_path):
    """gee-tsda Europe 2011 (source) → South America 2011 (target) through the CLI."""
    source, target = tmp_path / "eu.zarr", tmp_path / "sa.zarr"
    for region, out in (("gee-europe-2011", source), ("gee-south-america-2011", target)):
        res = cli("preprocess", "--catalog", CATALOG, "--region", region, "--out", out)
        assert res.exit_code == 0, res.output
    model = tmp_path / "m"
    res = cli(
        "meta-train",
        "--region",
        source,
        "--out",
        model,
        "--iterations",
        "10",
        "--ways",
        "4",
        "--shots",
        "3",
        "--queries",
        "3",
    )
    assert res.exit_code == 0, res.output
    res = cli(
        "adapt",
        "--model",
        model,
        "--region",
        target,
        "--shots",
        "5",
        "--out",
        tmp_path / "a",
        "--json",
        "--method",
        "maml",
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)["metrics"]
    baselines = set(BASELINES)
    assert {m for m in metrics if "+" not in m} == {"maml", *baselines}


SINOP_PATTERN = r"MODIS_Sinop_(?P<band>NDVI|EVI)_(?P<date>\d{4}-\d{2}-\d{2})\.tif"
#: the Sinop cube as `preprocess` and `map` read it: NDVI/EVI files by pattern, stored x10000
SINOP_CUBE = (
    "--tiles",
    SHARED / "sinop-modis-cube",
    "--layout",
    "band-date-pattern",
    "--pattern",
    SINOP_PATTERN,
    "--scale",
    "0.0001",
)


def test_mato_grosso_points_do_not_overlap_the_sinop_cube(cli, tmp_path):
    """All 2,115 Mato Grosso points lie outside the 50 × 50 px cube: a clear one-line error."""
    out = tmp_path / "x.zarr"
    labels = SHARED / "mato-grosso-modis" / "samples_mt_9classes.csv"
    res = cli(
        "preprocess",
        *SINOP_CUBE,
        "--labels",
        labels,
        "--label-column",
        "label",
        "--out",
        out,
    )
    assert res.exit_code == 2 and "no labelled field overlaps the tiles" in res.stderr
    assert not out.exists()


def test_mato_grosso_table_model_adapts_to_and_maps_the_sinop_cube(cli, tmp_path):
    """Meta-train on the Mato Grosso table (NDVI, EVI); adapt once to Sinop's 12 labelled
    points and once to all Mato Grosso samples, and fit the random forest baseline to those as
    the saved model; map the cube with each: the COGs keep the cube's custom sinusoidal CRS
    (WKT, no EPSG code) and its transform exactly."""
    mt, sinop = tmp_path / "mt.zarr", tmp_path / "sinop.zarr"
    for region, out in (("mato-grosso-ndvi-evi", mt), ("sinop", sinop)):
        res = cli("preprocess", "--catalog", CATALOG, "--region", region, "--out", out)
        assert res.exit_code == 0, res.output
    model = tmp_path / "m"
    res = cli(
        "meta-train",
        "--region",
        mt,
        "--out",
        model,
        "--iterations",
        "20",
        "--ways",
        "4",
        "--shots",
        "3",
        "--queries",
        "3",
    )
    assert res.exit_code == 0, res.output
    reference = SHARED / "sinop-modis-cube" / "MODIS_Sinop_NDVI_2014-01-01.tif"
    # the meta-learner adapted to each; and the random forest, held as tensors, on Mato Grosso
    for region, method in ((sinop, "maml"), (mt, "maml"), (mt, "random_forest")):
        adapted = tmp_path / f"a-{region.stem}-{method}"
        res = cli("adapt", "--model", model, "--region", region, "--out", adapted,
                  "--method", method)  # fmt: skip
        assert res.exit_code == 0, res.output
        crop_map = tmp_path / f"sinop-by-{region.stem}-{method}.tif"
        res = cli(
            "map",
            "--model",
            adapted,
            *SINOP_CUBE,
            "--out",
            crop_map,
            "--probabilities",
            "--uncertainty",
            "entropy",
            "--workers",
            "1",
        )
        assert res.exit_code == 0, res.output
        n_classes = len(json.loads(crop_map.with_suffix(".legend.json").read_text())["classes"])
        for path, count in ((crop_map, 1), (crop_map.with_suffix(".probabilities.tif"), n_classes)):
            with rasterio.open(path) as m, rasterio.open(reference) as ref:
                assert ref.crs.to_epsg() is None  # a custom WKT, no EPSG code
                assert m.crs.to_wkt() == ref.crs.to_wkt() and m.transform == ref.transform
                assert m.shape == ref.shape and m.count == count
                assert m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        with rasterio.open(crop_map) as m:
            assert (m.read(1) > 0).mean() > 0.9
    assert n_classes == 9  # the Mato Grosso model knows all nine classes


def test_every_gee_domain_is_consumed(cli, tmp_path):
    """A model meta-trained on the Europe 2011 source adapts to every NDVI domain; the LAI
    domain (another variable) is refused with the reason, and trains a model of its own."""
    domains = [
        "gee-europe-2011",
        "gee-south-america-2011",
        "gee-north-america-2011",
        "gee-europe-2003",
        "gee-landsat-europe-2011",
        "gee-lai-europe-2011",
    ]
    paths = {}
    for name in domains:
        paths[name] = tmp_path / f"{name}.zarr"
        assert (
            cli(
                "preprocess", "--catalog", CATALOG, "--region", name, "--out", paths[name]
            ).exit_code
            == 0
        )
    model = tmp_path / "m"
    quick = ["--iterations", "5", "--ways", "4", "--shots", "3", "--queries", "3"]
    assert (
        cli("meta-train", "--region", paths["gee-europe-2011"], "--out", model, *quick).exit_code
        == 0
    )
    for name in domains[1:5]:
        res = cli(
            "adapt",
            "--model",
            model,
            "--region",
            paths[name],
            "--method",
            "maml",  # the model adapts to the domain's series (scoring is other tests' job)
            "--out",
            tmp_path / f"a-{name}",
            "--json",
        )
        assert res.exit_code == 0, (name, res.output)
    lai = paths["gee-lai-europe-2011"]
    res = cli("adapt", "--model", model, "--region", lai, "--out", tmp_path / "a-lai")
    assert res.exit_code == 2 and "bands differ (lai vs ndvi)" in res.stderr
    assert cli("meta-train", "--region", lai, "--out", tmp_path / "m-lai", *quick).exit_code == 0
