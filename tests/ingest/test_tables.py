"""Time-series tables → region datasets: small CSV/Parquet/text files written here, and the real
tables of ``../shared/data`` through ``data_catalog/shared-data.yaml``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest

from cropmeta.catalog import TableSpec, load_catalog
from cropmeta.errors import InputError
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.ingest.dataset import RegionArrays, open_region
from cropmeta.ingest.prepare import TemporalGrid
from cropmeta.ingest.tables import normalise_label, preprocess_table
from cropmeta.taxonomy import CATALOG_DIR, load_taxonomy

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SHARED_CATALOG = CATALOG_DIR / "shared-data.yaml"
TAXONOMY = load_taxonomy()
#: A season from mid-September to the end of August, 16-day steps, crossing New Year.
SEASON = TemporalGrid(start_doy=257, end_doy=244, step=16)


def season_dates(start: str, n: int = 23) -> list[str]:
    return [str(d.date()) for d in pd.date_range(start, periods=n, freq="16D")]


def long_frame() -> pd.DataFrame:
    """Three samples in two seasons (2013/14 and 2015/16) with a NaN value and an absent row."""
    rows = []
    for sid, label, start, lon in [
        (7, "Soy_Corn", "2013-09-14", -55.1),
        (8, "Pasture", "2013-09-14", -55.2),
        (9, "Forest", "2015-09-14", -55.3),
    ]:
        for i, day in enumerate(season_dates(start)):
            rows.append(
                {
                    "sample_id": sid,
                    "longitude": lon,
                    "latitude": -11.0,
                    "label": label,
                    "date": day,
                    "red": 0.05 + 0.001 * i,
                    "nir": 0.3 + 0.01 * i,
                }
            )
    frame = pd.DataFrame(rows)
    frame.loc[(frame.sample_id == 8) & (frame.date == "2013-10-16"), "nir"] = np.nan
    return frame.drop(frame.index[(frame.sample_id == 8) & (frame.date == "2014-01-04")])


def long_spec(path: Path, **kw) -> TableSpec:
    base = {
        "format": "long",
        "path": str(path),
        "bands": ["red", "nir"],
        "x_column": "longitude",
        "y_column": "latitude",
    }
    return TableSpec(**(base | kw))


def run(spec: TableSpec, out: Path | None = None, **kw):
    kw = {"region": "test", "taxonomy": TAXONOMY, "grid": SEASON} | kw
    return preprocess_table(spec, out, **kw)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_long_table_follows_the_region_schema(tmp_path, suffix):
    path = tmp_path / f"samples.{suffix}"
    frame = long_frame()
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
    ds = run(long_spec(path), tmp_path / "region.zarr")
    assert ds["x"].dims == ("sample", "time", "band") and ds["x"].shape == (3, 23, 2)
    assert list(ds["band"].values) == ["red", "nir"] and ds["x"].dtype == np.float32
    assert not np.isnan(ds["x"].values).any()
    assert list(ds["field_id"].values) == [7, 8, 9] and ds["field_id"].dtype == np.int64
    assert [TAXONOMY.by_code(c).name for c in ds["code"].values] == [
        "soy_corn",
        "pasture",
        "forest",
    ]
    assert list(ds["label"].values) == ["Soy_Corn", "Pasture", "Forest"]
    assert list(ds["n_pixels"].values) == [1, 1, 1]
    np.testing.assert_allclose(ds["cx"].values, [-55.1, -55.2, -55.3])
    # Each sample lands on the grid by its own day of year, whatever its year.
    np.testing.assert_allclose(ds["x"].values[2, :, 1], 0.3 + 0.01 * np.arange(23), atol=1e-6)
    np.testing.assert_allclose(ds["x"].values[0], ds["x"].values[2], atol=1e-6)
    # The NaN and the absent row are missing observations: interpolated, counted as invalid.
    np.testing.assert_allclose(ds["valid_fraction"].values, [1.0, 21 / 23, 1.0], atol=1e-6)
    assert ds["x"].values[1, 2, 1] == pytest.approx(0.32, abs=1e-6)
    assert list(ds["doy"].values[:8]) == [257, 273, 289, 305, 321, 337, 353, 4]
    assert pyproj.CRS.from_wkt(ds.attrs["crs"]) == pyproj.CRS("EPSG:4326")
    summary = json.loads(ds.attrs["summary"])
    assert summary["kept"] == 3 and summary["seasons"] == {"2013-09-14": 2, "2015-09-14": 1}
    assert {c["name"] for c in json.loads(ds.attrs["classes"])} == {"soy_corn", "pasture", "forest"}
    arrays = RegionArrays.load(tmp_path / "region.zarr")
    assert arrays.x.shape == (3, 23, 2) and arrays.preparation.grid == SEASON
    assert open_region(tmp_path / "region.zarr").attrs["region"] == "test"


def test_samples_below_the_valid_fraction_are_dropped_and_counted(tmp_path):
    frame = long_frame()
    frame.loc[frame.sample_id == 9, "red"] = np.nan
    frame.loc[(frame.sample_id == 9) & (frame.date == "2015-10-16"), "red"] = 0.1
    frame.to_csv(tmp_path / "t.csv", index=False)
    ds = run(long_spec(tmp_path / "t.csv"))
    assert list(ds["field_id"].values) == [7, 8]
    assert json.loads(ds.attrs["summary"])["too_few_valid_observations"] == 1
    kept = run(long_spec(tmp_path / "t.csv"), min_valid_fraction=0.0)
    assert list(kept["field_id"].values) == [7, 8, 9]


def test_unknown_labels_are_dropped_with_a_warning_when_asked(tmp_path, caplog):
    frame = long_frame()
    frame.loc[frame.sample_id == 8, "label"] = "Eucalyptus"
    frame.to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="cropmeta.ingest.tables"):
        ds = run(long_spec(tmp_path / "t.csv"), drop_unknown=True)
    assert "'Eucalyptus' (1)" in caplog.text
    assert list(ds["field_id"].values) == [7, 9]
    assert json.loads(ds.attrs["summary"])["unknown_label"] == 1
    frame["label"] = "Eucalyptus"
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match="no label is in the taxonomy: Eucalyptus"):
        run(long_spec(tmp_path / "t.csv"), drop_unknown=True)


def test_region_column_selects_one_region(tmp_path):
    frame = long_frame()
    frame["tile"] = np.where(frame.sample_id == 8, 2, 1)
    frame.to_parquet(tmp_path / "t.parquet")
    ds = run(long_spec(tmp_path / "t.parquet", region_column="tile", region_value="2"))
    assert list(ds["field_id"].values) == [8]
    with pytest.raises(InputError, match="empty for tile = '3'"):
        run(long_spec(tmp_path / "t.parquet", region_column="tile", region_value="3"))


def test_numeric_labels_resolve_per_data_set_tag(tmp_path, caplog):
    assert [normalise_label(v) for v in ["1.200e+01", "12.0", " 3 ", "2.50", "Soy_Corn", 7.0]] == [
        "12",
        "12",
        "3",
        "2.5",
        "Soy_Corn",
        "7",
    ]
    lines = [f"{label} " + " ".join(["0.5"] * 23) for label in ["1.000e+00", "1", "7.0"]]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    spec = TableSpec(format="wide", path="t.txt", start_date="2014-01-01", step_days=16)
    grid = TemporalGrid(start_doy=1, end_doy=353, step=16)
    with caplog.at_level(logging.WARNING, logger="cropmeta.ingest.tables"):
        tiselac = run(spec, grid=grid, root=tmp_path, label_names="tiselac")
        assert not caplog.records
        amazon = run(spec, grid=grid, root=tmp_path, label_names="amazon", drop_unknown=True)
    assert "'7' (1)" in caplog.text
    assert [TAXONOMY.by_code(c).name for c in tiselac["code"].values] == [
        "urban",
        "urban",
        "sugarcane",
    ]
    assert [TAXONOMY.by_code(c).name for c in amazon["code"].values] == ["soybean", "soybean"]
    assert list(amazon["field_id"].values) == [1, 2]  # line numbers
    with pytest.raises(InputError, match="need `label_names`"):
        run(spec, grid=grid, root=tmp_path)
    with pytest.raises(InputError, match="no local names tagged 'nope'"):
        run(spec, grid=grid, root=tmp_path, label_names="nope")


def test_scale_and_offset_put_tables_on_one_scale(tmp_path):
    values = np.linspace(0.1, 0.8, 23)
    (tmp_path / "a.txt").write_text("Pasture " + " ".join(f"{v:.4f}" for v in values) + "\n")
    (tmp_path / "b.txt").write_text("Pasture " + " ".join(str(round(v * 10000)) for v in values))
    dates = season_dates("2013-09-14")
    a = run(TableSpec(format="wide", path=str(tmp_path / "a.txt"), dates=dates))
    b = run(TableSpec(format="wide", path=str(tmp_path / "b.txt"), dates=dates, scale=1e-4))
    np.testing.assert_allclose(a["x"].values, b["x"].values, atol=1e-6)
    c = run(TableSpec(format="wide", path=str(tmp_path / "a.txt"), dates=dates, offset=-0.1))
    np.testing.assert_allclose(c["x"].values, a["x"].values - 0.1, atol=1e-6)
    assert np.isnan(c["cx"].values).all()


@pytest.mark.parametrize(
    ("content", "spec", "problem"),
    [
        (None, {}, "file not found"),
        ("", {}, "table is empty"),
        ("sample_id,label,date,red,nir\n", {}, "table is empty"),
        ("sample_id,label,when,red\n1,Pasture,2014-01-01,0.1\n", {}, "missing column(s) date, nir"),
        (
            "sample_id,label,date,red,nir\n1,Pasture,2014-01-01,0.1,0.3\n1,Pasture,14/01/2014,0.1,0.3\n"
            "1,Pasture,someday,0.1,0.3\n",
            {},
            "unparseable date '14/01/2014'",
        ),
        (
            "sample_id,label,date,red,nir\n1,Pasture,2014-01-01,0.1,high\n",
            {},
            "'nir' has a non-number",
        ),
        (
            "sample_id,label,date,red,nir\n1,Pasture,2014-01-01,0.1,0.3\n1,Forest,2014-01-17,0.1,0.3\n",
            {},
            "sample '1' has more than one label",
        ),
        (
            "sample_id,label,date,red,nir\n,Pasture,2014-01-01,0.1,0.3\n",
            {},
            "1 rows have no 'sample_id'",
        ),
        (
            "sample_id,label,date,red,nir\n1,Pasture,2014-01-01,0.1,0.3\n",
            {"crs": "EPSG:0"},
            "unknown CRS",
        ),
    ],
)
def test_bad_long_tables(tmp_path, content, spec, problem):
    path = tmp_path / "t.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as err:
        run(long_spec(path, x_column=None, y_column=None, **spec))
    assert problem in err.value.problem and err.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "spec", "problem"),
    [
        ("", {"start_date": "2014-01-01", "step_days": 16}, "table is empty"),
        (
            "1 0.1 0.2 0.3\n",
            {"dates": ["2014-01-01", "2014-01-17"]},
            "3 values per line but 2 dates",
        ),
        ("1 0.1 0.2\n", {"dates": ["2014-01-01", "2014-13-17"]}, "unparseable date '2014-13-17'"),
        ("1 0.1 0.2\n", {"start_date": "Jan 1", "step_days": 16}, "unparseable date 'Jan 1'"),
        ("1 0.1 0.2\n", {}, "needs `dates`, or `start_date` and `step_days`"),
        (
            "1 0.1 0.2\n2 0.1\n",
            {"start_date": "2014-01-01", "step_days": 16},
            "line 2 has 1 values",
        ),
        (
            "1 0.1 x\n",
            {"start_date": "2014-01-01", "step_days": 16},
            "line 1, column 3 (value 2, 2014-01-17): 'x' is not a number",
        ),
    ],
)
def test_bad_wide_tables(tmp_path, content, spec, problem):
    (tmp_path / "t.txt").write_text(content)
    with pytest.raises(InputError) as err:
        run(TableSpec(format="wide", path="t.txt", **spec), root=tmp_path, label_names="tiselac")
    assert problem in err.value.problem


def test_taxonomy_keeps_demo_codes_and_has_no_ambiguous_names():
    first = {
        1: "maize",
        2: "winter_wheat",
        3: "winter_barley",
        4: "winter_rapeseed",
        5: "sunflower",
        6: "soybean",
        7: "sugar_beet",
        8: "potato",
        9: "grassland",
    }
    assert {c.code: c.name for c in TAXONOMY.classes if c.code <= 9} == first
    codes = [c.code for c in TAXONOMY.classes]
    assert len(codes) == len(set(codes)) and max(codes) <= 254
    seen: dict[tuple[str | None, str], int] = {}
    for c in TAXONOMY.classes:
        for tag, name in [(None, c.name), *c.names.items()]:
            key = normalise_label(name).casefold()
            scope = tag if key.replace(".", "").isdigit() else None  # numbers are per data set
            assert seen.setdefault((scope, key), c.code) == c.code, f"{name!r} is ambiguous"


#: README counts: samples and classes per region of the shared-data catalog.
EXPECTED = {
    "mato-grosso": (2115, 9),
    "mato-grosso-ndvi-evi": (2115, 9),
    "mato-grosso-ndvi": (2115, 9),
    "gee-europe-2011": (311, 6),
    "gee-south-america-2011": (338, 6),
    "gee-north-america-2011": (344, 6),
    "gee-europe-2003": (389, 6),
    "gee-landsat-europe-2011": (355, 6),
    "gee-lai-europe-2011": (339, 6),
    "brazilian-amazon-train": (2500, 5),
    "brazilian-amazon-test": (2500, 5),
    "tiselac-train": (4500, 9),
    "tiselac-test": (5000, 9),
}


def test_shared_data_catalog_preprocesses_every_table(tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (a fresh clone has no ../shared)")
    catalog = load_catalog(SHARED_CATALOG)
    tables = [r for r in catalog.regions if r.table is not None]
    assert {r.name for r in tables} == set(EXPECTED)
    assert {r.name for r in catalog.sources()} >= {"mato-grosso", "gee-europe-2011"}
    for entry in tables:
        assert entry.table.label_names  # numeric labels need their data set's tag
        out = tmp_path / f"{entry.name}.zarr" if entry.name == "mato-grosso" else None
        ds = preprocess_catalog_region(SHARED_CATALOG, entry.name, out)
        summary = json.loads(ds.attrs["summary"])
        n, n_classes = EXPECTED[entry.name]
        assert summary["fields_in_file"] == summary["kept"] == ds.sizes["sample"] == n, entry.name
        assert summary["unknown_label"] == 0 and (ds["code"].values > 0).all()
        assert len(json.loads(ds.attrs["classes"])) == n_classes, entry.name
        assert not np.isnan(ds["x"].values).any()
        assert ds.sizes["time"] == len(TemporalGrid(**entry.season))
    arrays = RegionArrays.load(tmp_path / "mato-grosso.zarr")
    assert arrays.x.shape == (2115, 23, 6) and 0 <= arrays.x[..., 3].min() < arrays.x.max() <= 1.2


def test_missing_tokens_and_other_season_observations(tmp_path):
    values = ["0.5"] * 23
    values[3], values[10] = "NaN", "?"
    (tmp_path / "w.txt").write_text("Pasture " + " ".join(values) + "\n")
    dates = season_dates("2013-09-14")
    ds = run(TableSpec(format="wide", path=str(tmp_path / "w.txt"), dates=dates))
    assert ds["valid_fraction"].values[0] == pytest.approx(21 / 23)
    np.testing.assert_allclose(ds["x"].values, 0.5)
    # A sample's observations from a later season do not mix into its main season.
    frame = long_frame()
    extra = frame[frame.sample_id == 9].head(3).assign(sample_id=7, label="Soy_Corn", nir=9.0)
    pd.concat([frame, extra]).to_csv(tmp_path / "t.csv", index=False)
    ds = run(long_spec(tmp_path / "t.csv"))
    assert ds["x"].values[0, :, 1].max() < 1 and json.loads(ds.attrs["summary"])["kept"] == 3
