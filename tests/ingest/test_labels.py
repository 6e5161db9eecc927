"""Reading label files: every format written for real, geometry repair, reprojection, bad input.

The synthetic fields sit in UTM zone 21S (near Sinop, Mato Grosso) and are read into a MODIS
sinusoidal grid given as a custom WKT without an EPSG code — the case of the real Sinop cube.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from cropmeta.errors import InputError
from cropmeta.ingest.labels import read_labels
from cropmeta.taxonomy import CropClass, Taxonomy

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
UTM = "EPSG:32721"
#: The MODIS sinusoidal CRS as the Sinop GeoTIFFs carry it: a sphere, no EPSG code.
SINUSOIDAL = (
    'PROJCS["unknown",GEOGCS["unknown",DATUM["unknown",SPHEROID["unknown",6371007.181,0]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Sinusoidal"],'
    'PARAMETER["longitude_of_center",0],PARAMETER["false_easting",0],'
    'PARAMETER["false_northing",0],UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)
R = 6371007.181
TAXONOMY = Taxonomy(
    name="test",
    classes=[
        CropClass(code=1, name="maize", names={"pt": "milho"}),
        CropClass(code=2, name="soy", names={"pt": "soja"}),
        CropClass(code=3, name="Pasture"),
        CropClass(code=4, name="Soy_Corn"),
    ],
)
X0, Y0 = 630_000.0, 8_700_000.0  # UTM 21S, about 55.8 W, 11.8 S
BOWTIE = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100), (X0, Y0)])


def fields(points: bool = True) -> gpd.GeoDataFrame:
    """Four square fields, a bow-tie (invalid) and, optionally, two point samples."""
    geoms = [box(X0 + 200 * i, Y0 + 300, X0 + 200 * i + 150, Y0 + 450) for i in range(4)]
    geoms.append(BOWTIE)
    labels = ["maize", "Soja", "soy ", "rice", "milho"]
    if points:
        geoms += [Point(X0 + 1000, Y0 + 1000), Point(X0 + 1200, Y0 + 1000)]
        labels += ["maize", "soy"]
    ids = [f"f{i}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"fid_": ids, "crop": labels}, geometry=geoms, crs=UTM)


def write(gdf: gpd.GeoDataFrame, path: Path, **kw) -> Path:
    if path.suffix == ".parquet":
        gdf.to_parquet(path)
    else:
        gdf.to_file(path, **kw)
    return path


def read(path: Path, crs=SINUSOIDAL, **kw) -> gpd.GeoDataFrame:
    return read_labels(path, kw.pop("label_column", "crop"), TAXONOMY, crs, **kw)


def sinusoidal(lon: float, lat: float) -> tuple[float, float]:
    """The MODIS sinusoidal projection written out, to check reprojection independently."""
    return R * math.radians(lon) * math.cos(math.radians(lat)), R * math.radians(lat)


@pytest.mark.parametrize("name", ["f.gpkg", "f.geojson", "f.shp", "f.parquet"])
def test_vector_formats(tmp_path, name):
    src = fields(points=not name.endswith(".shp"))  # a Shapefile holds one geometry type
    path = write(src, tmp_path / name)
    out = read(path, id_column="fid_", drop_unknown=True)  # 'rice' is not in the taxonomy
    assert list(out.columns) == ["field_id", "label", "code", "geometry"]
    assert out.crs.equals(gpd.GeoSeries(crs=SINUSOIDAL).crs)
    known = src[src.crop != "rice"]
    assert list(out.field_id) == list(known.fid_)
    assert list(out.code) == [1, 2, 2, 1] + ([1, 2] if len(src) > 5 else [])
    assert list(out.label) == [s.strip() for s in known.crop]
    report = out.attrs["label_report"]
    assert report["repaired"] == 1 and report["unknown_labels"] == {"rice": 1}
    assert report["features"] == len(src) and report["kept"] == len(out)
    assert report["points"] == (2 if len(src) > 5 else 0)
    assert out.geometry.is_valid.all()


def test_reprojection_is_exact(tmp_path):
    src = fields()
    path = write(src, tmp_path / "f.gpkg")
    out = read(path, drop_unknown=True)
    lonlat = src.to_crs("EPSG:4326").geometry
    for got, want in zip(out.geometry[out.geom_type == "Point"], lonlat[5:], strict=True):
        x, y = sinusoidal(want.x, want.y)
        assert got.x == pytest.approx(x, abs=0.01) and got.y == pytest.approx(y, abs=0.01)
    assert -6.2e6 < out.total_bounds[0] < -6.0e6 and -1.4e6 < out.total_bounds[1] < -1.2e6


def test_bowtie_is_repaired_into_polygons(tmp_path):
    out = read(write(fields(), tmp_path / "f.gpkg"), crs=UTM, drop_unknown=True)
    repaired = out.geometry[out.field_id == 5].iloc[0]  # ids number the file's features
    assert repaired.geom_type == "MultiPolygon" and repaired.is_valid
    assert repaired.area == pytest.approx(2 * 100 * 50 / 2)  # two triangles
    assert shapely.equals_exact(repaired.envelope, BOWTIE.envelope, tolerance=1e-6)


def test_empty_null_and_collapsed_geometries_are_dropped_and_counted(tmp_path):
    src = fields()
    extra = gpd.GeoDataFrame(
        {"fid_": ["n", "e", "z"], "crop": ["soy"] * 3},
        geometry=[None, Polygon(), Polygon([(X0, Y0), (X0 + 5, Y0 + 5), (X0 + 9, Y0 + 9)])],
        crs=UTM,
    )
    path = write(pd.concat([src, extra], ignore_index=True), tmp_path / "f.gpkg")
    report = read(path, drop_unknown=True).attrs["label_report"]
    assert report["empty_dropped"] == 2 and report["collapsed_dropped"] == 1
    assert report["repaired"] == 2 and report["kept"] == 6


def test_geopackage_layers(tmp_path):
    path = tmp_path / "two.gpkg"
    write(fields(), path, layer="fields")
    write(fields(points=False).iloc[:2], path, layer="other")
    with pytest.raises(InputError, match=r"several layers.*fields, .*other"):
        read(path)
    with pytest.raises(InputError, match=r"no layer 'nope'"):
        read(path, layer="nope")
    assert len(read(path, layer="fields", drop_unknown=True)) == 6
    assert len(read(path, layer="other")) == 2


def test_csv_points_with_detected_columns(tmp_path):
    lon = [-55.7, -55.6, None] + [-55.5 + i / 100 for i in range(7)]
    lat, crop = [-11.8, -11.7] + [-11.6] * 8, ["maize", "soja"] + ["soy"] * 8
    df = pd.DataFrame({"ID": range(1, 11), "Lon": lon, "Lat": lat, "crop": crop})
    df.to_csv(tmp_path / "s.csv", sep=";", index=False)
    out = read(tmp_path / "s.csv")
    assert list(out.field_id) == [1, 2, *range(4, 11)]  # row without a longitude dropped
    report = out.attrs["label_report"]
    assert report["empty_dropped"] == report["bad_coordinates"] == 1  # 10 %: still accepted
    x, y = sinusoidal(-55.6, -11.7)
    assert out.geometry[1].x == pytest.approx(x, abs=0.01)
    assert out.geometry[1].y == pytest.approx(y, abs=0.01)


def test_table_in_projected_crs_with_named_columns(tmp_path):
    pts = fields().iloc[5:]
    df = pd.DataFrame({"e": pts.geometry.x, "n": pts.geometry.y, "crop": pts.crop})
    df.to_parquet(tmp_path / "plain.parquet")  # a Parquet table without geometry
    df.to_csv(tmp_path / "t.csv", index=False)
    for name in ("plain.parquet", "t.csv"):
        out = read(tmp_path / name, crs=UTM, x_column="e", y_column="n", labels_crs=UTM)
        assert np.allclose(out.geometry.x, pts.geometry.x) and list(out.field_id) == [1, 2]
    with pytest.raises(InputError, match="not longitude/latitude"):
        read(tmp_path / "t.csv", x_column="e", y_column="n")
    with pytest.raises(InputError, match="y_column not given"):
        read(tmp_path / "t.csv", x_column="e")


def test_long_table_gives_one_point_per_id(tmp_path, caplog):
    rows = [(i, -55.0 - i / 10, -11.0, lab) for i, lab in enumerate(["maize", "soy"])]
    df = pd.DataFrame(
        [(*r, f"2014-0{m}-01") for r in rows for m in (1, 2, 3)],
        columns=["sample_id", "longitude", "latitude", "crop", "date"],
    )
    df.to_csv(tmp_path / "long.csv", index=False)
    with caplog.at_level(logging.INFO, logger="cropmeta.ingest.labels"):
        out = read(tmp_path / "long.csv")
    assert list(out.field_id) == [0, 1] and "long table" in caplog.text
    assert out.attrs["label_report"]["duplicate_ids"] == 2
    df.loc[1, "crop"] = "soy"
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=r"duplicate values with different label.*: 0"):
        read(tmp_path / "bad.csv")


def _real(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def test_real_sinop_samples_into_the_cube_crs():
    rasterio = pytest.importorskip("rasterio")
    samples = _real("sinop-modis-cube/samples_sinop_crop.csv")
    with rasterio.open(next(samples.parent.glob("*.tif"))) as src:
        crs, bounds = src.crs, src.bounds
    assert crs.to_epsg() is None  # a custom sinusoidal WKT
    out = read_labels(samples, "label", TAXONOMY, crs, drop_unknown=True)  # Forest, Cerrado
    table = pd.read_csv(samples)
    known = table[table.label.isin(["Pasture", "Soy_Corn"])]
    assert list(out.field_id) == list(known.id)
    report = out.attrs["label_report"]
    assert report["unknown_labels"] == table.label[~table.index.isin(known.index)].value_counts(
        sort=True
    ).to_dict() and report["points"] == len(known)
    x, y = sinusoidal(known.longitude.iloc[0], known.latitude.iloc[0])
    assert out.geometry[0].x == pytest.approx(x, abs=0.01)
    assert out.geometry[0].y == pytest.approx(y, abs=0.01)
    inside = out.geometry.within(box(*bounds))
    assert inside.sum() >= len(out) // 2  # most samples fall on the cube (a few lie east of it)


def test_real_mato_grosso_long_table():
    samples = _real("mato-grosso-modis/samples_mt_9classes.csv")
    out = read_labels(samples, "label", TAXONOMY, SINUSOIDAL, "sample_id", drop_unknown=True)
    firsts = pd.read_csv(samples).drop_duplicates("sample_id")
    known = firsts[firsts.label.isin(["Pasture", "Soy_Corn"])]
    assert list(out.field_id) == list(known.sample_id) and out.field_id.is_unique
    assert out.attrs["label_report"]["features"] == len(firsts)
    assert sum(out.attrs["label_report"]["unknown_labels"].values()) == len(firsts) - len(known)


# --- bad input: one InputError naming the file -------------------------------------------------


def _bad(path: Path, fragment: str, **kw) -> None:
    with pytest.raises(InputError, match=fragment) as info:
        read(path, **kw)
    assert info.value.path == str(path) and "\n" not in str(info.value)


def test_missing_empty_and_corrupt_files(tmp_path):
    _bad(tmp_path / "nope.gpkg", "label file not found")
    (tmp_path / "empty.csv").write_text("")
    _bad(tmp_path / "empty.csv", "label file is empty")
    (tmp_path / "junk.gpkg").write_bytes(b"\x00\x01not a geopackage" * 50)
    _bad(tmp_path / "junk.gpkg", "cannot read label file")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 but not really" * 10)
    _bad(tmp_path / "junk.parquet", "cannot read label file")
    (tmp_path / "header.csv").write_text("lon,lat,crop\n")
    _bad(tmp_path / "header.csv", "no features")
    write(fields().iloc[:0], tmp_path / "none.gpkg")
    _bad(tmp_path / "none.gpkg", "no features")
    write(fields().iloc[:0], tmp_path / "none.geojson")
    _bad(tmp_path / "none.geojson", "no features")


def test_missing_columns(tmp_path):
    path = write(fields(), tmp_path / "f.geojson")
    _bad(path, r"label column 'kind' not found \(columns: 'fid_', 'crop'\)", label_column="kind")
    _bad(path, "id column 'field' not found", id_column="field")
    pd.DataFrame({"a": [1.0], "b": [2.0], "crop": ["soy"]}).to_csv(tmp_path / "c.csv")
    _bad(tmp_path / "c.csv", r"no coordinate columns \(longitude/latitude, lon/lat")


def test_duplicate_and_empty_ids(tmp_path):
    src = fields()
    src.loc[3, "fid_"] = "f1"
    _bad(
        write(src, tmp_path / "dup.gpkg"),
        r"id column 'fid_' has duplicate values: 'f1'",
        **{"id_column": "fid_"},
    )
    src.loc[3, "fid_"] = None
    _bad(write(src, tmp_path / "nan.gpkg"), "has empty values", id_column="fid_")


def test_no_crs(tmp_path):
    with pytest.warns(UserWarning, match="crs"):
        path = write(fields(points=False).set_crs(None, allow_override=True), tmp_path / "f.shp")
    assert not path.with_suffix(".prj").exists()
    _bad(path, "has no CRS")


def test_no_known_label_lists_up_to_ten(tmp_path):
    src = fields(points=False)
    src = pd.concat([src] * 3, ignore_index=True)
    src["crop"] = [f"crop{i:02d}" for i in range(len(src))]
    _bad(write(src, tmp_path / "f.gpkg"), r"known to the taxonomy 'test'.*'crop09' and 5 more\)")


def test_bad_labels_crs(tmp_path):
    pd.DataFrame({"x": [1.0], "y": [2.0], "crop": ["soy"]}).to_csv(tmp_path / "c.csv")
    _bad(tmp_path / "c.csv", "labels_crs 'EPSG:0' is not a CRS", labels_crs="EPSG:0")
