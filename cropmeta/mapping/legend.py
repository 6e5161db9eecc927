"""What the class codes of a map mean, in the forms GIS software and people read.

* tags in the GeoTIFF (``CLASS_<code>=<name>``) and its colour table — any GDAL reader;
* ``OUT.tif.aux.xml`` — GDAL's PAM sidecar with category names and a thematic raster
  attribute table (value, class, shared code, colour), shown by ``gdalinfo`` and QGIS;
* ``OUT.qml`` — a QGIS style with a paletted renderer and the class names as labels, which
  QGIS applies when it opens ``OUT.tif``;
* ``OUT.legend.json`` / ``OUT.legend.csv`` — code, shared code, name, local names, colour.

Pixel values are the taxonomy's shared codes, so one code means one crop in every map.
rasterio cannot write category names or attribute tables, so the PAM and QGIS files are
written here as XML (their formats are small and documented by GDAL and QGIS).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from cropmeta.errors import atomic_output
from cropmeta.models.bundle import ClassInfo

NODATA_LABEL = (
    "not classified (masked, outside the AOI, too few valid observations, or below "
    "--min-probability)"
)


def rgba(colour: str) -> tuple[int, int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def class_tags(classes: list[ClassInfo], nodata: int) -> dict[str, str]:
    return {
        "CROPMETA_CLASSES": ";".join(f"{c.code}={c.name}" for c in classes),
        "CROPMETA_NODATA": f"{nodata}={NODATA_LABEL}",
        **{f"CLASS_{c.code}": c.name for c in classes},
    }


def legend_rows(classes: list[ClassInfo]) -> list[dict]:
    return [
        {
            "code": c.code,
            "shared_code": c.code,
            "name": c.name,
            "local_names": list(c.local_names) or [c.name],
            "colour": c.colour,
        }
        for c in classes
    ]


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_legend(classes: list[ClassInfo], nodata: int, json_path: Path, csv_path: Path) -> None:
    rows = legend_rows(classes)
    doc = {"nodata": {"code": nodata, "meaning": NODATA_LABEL}, "classes": rows}
    _write_text(json_path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["code", "shared_code", "name", "local_name", "colour"])
    for r in rows:
        writer.writerow(
            [r["code"], r["shared_code"], r["name"], "|".join(r["local_names"]), r["colour"]]
        )
    _write_text(csv_path, buf.getvalue())


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_qgis_style(classes: list[ClassInfo], path: Path) -> None:
    """A QGIS layer style (``.qml``): paletted renderer, one labelled entry per class."""
    qgis = ET.Element("qgis", version="3.28.0", styleCategories="Symbology")
    pipe = ET.SubElement(qgis, "pipe")
    renderer = ET.SubElement(
        pipe, "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1"
    )
    palette = ET.SubElement(renderer, "colorPalette")
    for c in classes:
        ET.SubElement(
            palette, "paletteEntry", value=str(c.code), color=c.colour, alpha="255", label=c.name
        )
    _write_text(path, "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + _xml(qgis))


# GDAL raster attribute table field types and usages (gdal.h: GDALRATFieldType / Usage)
_INTEGER, _STRING = 0, 2
_USAGE = {"Value": 5, "Class": 2, "SharedCode": 0, "Red": 6, "Green": 7, "Blue": 8, "Alpha": 9}


def write_pam(classes: list[ClassInfo], nodata: int, path: Path) -> None:
    """GDAL PAM sidecar (``OUT.tif.aux.xml``): category names and a thematic attribute table."""
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    names = ET.SubElement(band, "CategoryNames")
    by_code = {c.code: c.name for c in classes}
    for code in range(max(by_code) + 1):
        ET.SubElement(names, "Category").text = by_code.get(code, "")
    rat = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    for i, (name, usage) in enumerate(_USAGE.items()):
        defn = ET.SubElement(rat, "FieldDefn", index=str(i))
        ET.SubElement(defn, "Name").text = name
        ET.SubElement(defn, "Type").text = str(_STRING if name == "Class" else _INTEGER)
        ET.SubElement(defn, "Usage").text = str(usage)
    for i, c in enumerate(classes):
        row = ET.SubElement(rat, "Row", index=str(i))
        for value in (c.code, c.name, c.code, *rgba(c.colour)):
            ET.SubElement(row, "F").text = str(value)
    _write_text(path, _xml(root))
