"""Inputs that used to be accepted silently are refused with one line naming the file (issue 17).

Unknown labels (empty ones included), unreadable point coordinates, table cells that are not
numbers and region datasets holding NaN: each is written here as a real file, and the refusal
checked — or, where the user asks for it (``drop_unknown``) or the damage is small (a few points
without coordinates), the warning and the count in the report.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from checks import assert_one_line_error
from shapely.geometry import box

from cropmeta.catalog import TableSpec
from cropmeta.errors import InputError
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.ingest.labels import MAX_BAD_COORDINATES, read_labels
from cropmeta.ingest.prepare import TemporalGrid
from cropmeta.ingest.tables import preprocess_table
from cropmeta.taxonomy import CropClass, Taxonomy, load_taxonomy

UTM = "EPSG:32721"
TAXONOMY = Taxonomy(
    name="test",
    classes=[CropClass(code=1, name="maize"), CropClass(code=2, name="soy")],
)
X0, Y0 = 630_000.0, 8_700_000.0


def polygons(path: Path, labels: list) -> Path:
    """One square field per label, written as a GeoPackage."""
    geoms = [box(X0 + 200 * i, Y0, X0 + 200 * i + 150, Y0 + 150) for i in range(len(labels))]
    gdf = gpd.GeoDataFrame({"crop": labels}, geometry=geoms, crs=UTM)
    gdf.to_file(path)
    return path


def refused(call, path: Path, *fragments: str) -> str:
    """Run ``call``; it must raise one InputError naming ``path`` and holding ``fragments``."""
    with pytest.raises(InputError) as info:
        call()
    assert info.value.path == str(path) and "\n" not in str(info.value)
    for fragment in fragments:
        assert fragment in info.value.problem, info.value.problem
    return info.value.problem


def warnings_of(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= 30]


# --- labels the taxonomy does not know --------------------------------------------------------


MIXED = ["maize", "rice", "soy", "Eucalyptus", "rice", "maize", "rice", "soy"]


def test_unknown_labels_are_refused_and_listed_with_counts(tmp_path, caplog):
    path = polygons(tmp_path / "f.gpkg", MIXED)
    with caplog.at_level(logging.INFO):
        problem = refused(
            lambda: read_labels(path, "crop", TAXONOMY, UTM),
            path,
            "labels in column 'crop' not in the taxonomy 'test': 'rice' (3), 'Eucalyptus' (1);",
            "--drop-unknown",
        )
    assert problem.index("'rice'") < problem.index("'Eucalyptus'")  # most frequent first
    assert not warnings_of(caplog, "cropmeta.ingest.labels")  # no warning before the error


def test_long_lists_of_unknown_labels_are_cut(tmp_path):
    labels = ["maize"] + [f"crop{i:02d}" for i in range(12) for _ in range(12 - i)]
    path = polygons(tmp_path / "f.gpkg", labels)
    refused(
        lambda: read_labels(path, "crop", TAXONOMY, UTM),
        path,
        "'crop00' (12), 'crop01' (11),",
        "'crop09' (3) and 2 more;",
    )


def test_drop_unknown_keeps_going_reports_and_warns_once(tmp_path, caplog):
    path = polygons(tmp_path / "f.gpkg", MIXED)
    with caplog.at_level(logging.WARNING):
        out = read_labels(path, "crop", TAXONOMY, UTM, drop_unknown=True)
    assert list(out.label) == ["maize", "soy", "maize", "soy"]
    report = out.attrs["label_report"]
    assert report["unknown_labels"] == {"rice": 3, "Eucalyptus": 1} and report["kept"] == 4
    (warning,) = warnings_of(caplog, "cropmeta.ingest.labels")
    assert "dropped 4 fields" in warning and "'rice' (3), 'Eucalyptus' (1)" in warning


def test_empty_and_nan_labels_are_unknown_labels(tmp_path, caplog):
    path = polygons(tmp_path / "f.gpkg", ["maize", None, "soy", "  ", None, "rice"])
    with caplog.at_level(logging.WARNING):
        refused(lambda: read_labels(path, "crop", TAXONOMY, UTM), path, "(empty) (3), 'rice' (1)")
    assert not warnings_of(caplog, "cropmeta.ingest.labels")
    out = read_labels(path, "crop", TAXONOMY, UTM, drop_unknown=True)
    assert out.attrs["label_report"]["unknown_labels"] == {"(empty)": 3, "rice": 1}
    # The same in a time-series table: an empty label cell is an unknown label.
    rows = [
        (sid, label, day.date().isoformat(), 0.3)
        for sid, label in [(1, "Pasture"), (2, None), (3, "Forest")]
        for day in pd.date_range("2023-03-01", periods=20, freq="10D")
    ]
    table = tmp_path / "t.csv"
    pd.DataFrame(rows, columns=["sample_id", "label", "date", "ndvi"]).to_csv(table, index=False)
    spec = TableSpec(format="long", path=str(table))
    run = dict(region="t", taxonomy=load_taxonomy(), grid=TemporalGrid())
    with caplog.at_level(logging.WARNING):
        refused(lambda: preprocess_table(spec, **run), table, "(empty) (1);", "--drop-unknown")
    assert not warnings_of(caplog, "cropmeta.ingest.tables")
    ds = preprocess_table(spec, **run, drop_unknown=True)
    assert list(ds["field_id"].values) == [1, 3]
    assert json.loads(ds.attrs["summary"])["unknown_labels"] == {"(empty)": 1}
    assert "(empty) (1)" in warnings_of(caplog, "cropmeta.ingest.tables")[0]


def test_catalog_entry_or_caller_drops_unknown_labels(catalog, tmp_path):
    """``drop_unknown`` reaches the label reader from the catalog entry and from the caller."""
    entry = catalog.targets()[0]
    fields = gpd.read_file(catalog.path(entry.labels))
    fields.loc[fields.index[:2], entry.label_column] = "Unobtainium"
    labels = tmp_path / "odd.gpkg"
    fields.to_file(labels, layer="fields")
    region = entry.model_dump() | {"labels": str(labels), "tiles": str(catalog.path(entry.tiles))}
    for name, drop in (("strict", False), ("lenient", True)):
        cat = {"name": name, "regions": [region | {"drop_unknown": drop}]}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cat))
    strict, lenient = tmp_path / "strict.yaml", tmp_path / "lenient.yaml"
    name = entry.name
    refused(lambda: preprocess_catalog_region(strict, name), labels, "'Unobtainium' (2)")
    for ds in (
        preprocess_catalog_region(lenient, name),
        preprocess_catalog_region(strict, name, drop_unknown=True),
    ):
        summary = json.loads(ds.attrs["summary"])
        assert summary["labels"]["unknown_labels"] == {"Unobtainium": 2}
        assert "Unobtainium" not in set(ds["label"].values)


# --- CSV point labels whose coordinates are missing or not numbers -----------------------------


def points_csv(path: Path, bad: dict[int, tuple]) -> Path:
    """20 points of known labels; ``bad`` replaces (lon, lat) of some data rows (0-based)."""
    lon = [-55.70 + i / 100 for i in range(20)]
    lat = [-11.80] * 20
    for row, (x, y) in bad.items():
        lon[row], lat[row] = x, y
    frame = pd.DataFrame({"lon": lon, "lat": lat, "crop": ["maize", "soy"] * 10})
    frame.to_csv(path, index=False)
    return path


def test_a_few_unreadable_coordinates_are_dropped_with_a_warning(tmp_path, caplog):
    path = points_csv(tmp_path / "p.csv", {4: ("abc", -11.8), 9: (-55.6, None)})
    assert MAX_BAD_COORDINATES >= 2 / 20
    with caplog.at_level(logging.WARNING):
        out = read_labels(path, "crop", TAXONOMY, UTM)
    assert len(out) == 18 and out.attrs["label_report"]["bad_coordinates"] == 2
    (warning,) = warnings_of(caplog, "cropmeta.ingest.labels")
    assert "2 of 20 rows" in warning and "columns 'lon', 'lat'" in warning
    assert "row 5 (line 6), lon 'abc'" in warning


def test_many_unreadable_coordinates_refuse_the_file(tmp_path, caplog):
    bad = {2: ("", -11.8), 6: ("12,5", -11.8), 7: ("abc", -11.8)}
    path = points_csv(tmp_path / "p.csv", bad)
    with caplog.at_level(logging.WARNING):
        refused(
            lambda: read_labels(path, "crop", TAXONOMY, UTM),
            path,
            "3 of 20 rows (15%) have a missing or non-numeric coordinate in column 'lon'",
            "the first is row 3 (line 4), lon empty",
            "more than 10% is refused",
        )
    assert not warnings_of(caplog, "cropmeta.ingest.labels")


# --- table cells that are not numbers ----------------------------------------------------------


def long_table(path: Path) -> pd.DataFrame:
    """Two samples with text columns beside the bands: a tile id, a date and a note."""
    days = pd.date_range("2023-03-01", periods=20, freq="10D")
    rows = [
        {
            "sample_id": sid,
            "label": label,
            "date": day.date().isoformat(),
            "tile": "31TCJ",
            "acquired": "2023-01-01",
            "note": "" if i else "checked",
            "red": 0.05,
            "nir": 0.3 + 0.01 * i,
        }
        for sid, label in [(1, "maize"), (2, "soybean")]
        for i, day in enumerate(days)
    ]
    frame = pd.DataFrame(rows)
    frame.loc[5, "nir"] = np.nan  # an empty cell stays a missing value
    return frame


def run_long(path: Path, bands: list[str] | None = None):
    spec = TableSpec(format="long", path=str(path), bands=bands)
    return preprocess_table(spec, region="t", taxonomy=load_taxonomy(), grid=TemporalGrid())


@pytest.mark.parametrize("value", ["high", "0,31", "inf"])
def test_long_table_cell_that_is_not_a_number_is_refused(tmp_path, value):
    frame = long_table(tmp_path / "t.csv")
    frame.to_csv(tmp_path / "ok.csv", index=False)
    ds = run_long(tmp_path / "ok.csv")  # text columns are no bands; an empty cell is missing
    assert list(ds["band"].values) == ["red", "nir"] and ds.sizes["sample"] == 2
    frame["nir"] = frame["nir"].astype(object)
    frame.loc[[7, 30], "nir"] = value
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    fragment = f"column 'nir' has a non-number {value!r} in row 8 (line 9) (2 such cells)"
    for bands in (None, ["red", "nir"]):  # found as a band, or named as one
        refused(lambda bands=bands: run_long(path, bands), path, fragment)
    frame.astype({"nir": str}).to_parquet(tmp_path / "t.parquet")  # NaN: the text 'nan'
    refused(lambda: run_long(tmp_path / "t.parquet"), tmp_path / "t.parquet", "in row 8 (")


def test_long_table_band_named_by_the_user_must_be_numeric(tmp_path):
    path = tmp_path / "t.csv"
    long_table(path).to_csv(path, index=False)
    refused(lambda: run_long(path, ["red", "tile"]), path, "'tile' has a non-number '31TCJ'")


@pytest.mark.parametrize("value", ["x", "1_000", "inf", "0,5"])
def test_wide_table_cell_that_is_not_a_number_is_refused(tmp_path, value):
    lines = ["3 " + " ".join(["0.5"] * 23) for _ in range(3)]
    lines[1] = lines[1].replace("0.5 0.5 0.5 0.5 0.5", f"0.5 0.5 NA ? {value}", 1)
    path = tmp_path / "w.txt"
    path.write_text("\n".join(lines) + "\n")
    spec = TableSpec(format="wide", path=str(path), start_date="2014-01-01", step_days=16)
    grid = TemporalGrid(start_doy=1, end_doy=353, step=16)
    run = dict(region="w", taxonomy=load_taxonomy(), grid=grid, label_names="tiselac")
    refused(
        lambda: preprocess_table(spec, **run),
        path,
        f"line 2, column 6 (value 5, 2014-03-06): {value!r} is not a number",
    )
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    assert preprocess_table(spec, **run).sizes["sample"] == 2


# --- region datasets whose series are not finite ----------------------------------------------


def test_region_dataset_with_a_missing_chunk_is_refused(regions, cli, tmp_path):
    store = tmp_path / "damaged.zarr"
    shutil.copytree(next(iter(regions.values())), store)
    chunks = sorted((store / "x").glob("[0-9]*"))
    assert chunks, "the x array has chunk files"
    chunks[0].unlink()  # read back as the fill value, NaN
    problem = refused(lambda: RegionArrays.load(store), store, "values of x are NaN or infinite")
    assert "a data chunk of the store may be missing or damaged" in problem
    out = tmp_path / "model"
    res = cli("meta-train", "--region", store, "--out", out, "--iterations", "2")
    assert_one_line_error(res, out, "may be missing or damaged")
