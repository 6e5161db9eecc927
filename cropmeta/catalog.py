"""Region catalogs (``data_catalog/``), validated with pydantic.

A catalog lists regions — where their tiles and labelled fields are, which column holds the
label, and whether the region is a data-rich *source* or a sparse *target*. The crop taxonomy
their labels use is :mod:`cropmeta.taxonomy`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from cropmeta.errors import InputError, first_error, read_yaml
from cropmeta.taxonomy import CATALOG_DIR, Taxonomy, load_taxonomy


class RasterSpec(BaseModel):
    """Where a region's time-resolved rasters are and how to read them.

    Layouts: ``per-date`` — a folder of one multi-band file per date, date in the file name;
    ``band-date-pattern`` — a folder of single-band files, ``pattern`` a regex whose named groups
    ``band`` and ``date`` pick both out of the file name; ``stac`` — STAC items (a JSON file or
    URL: an ItemCollection, Item or Catalog) over local or remote rasters, as providers deliver
    them, read onto one grid (``crs``, ``resolution``, ``bounds``, ``resampling``);
    ``datacube`` — a netCDF or Zarr cube with dimensions (time, band, y, x) or one variable per
    band over (time, y, x).
    """

    layout: Literal["per-date", "band-date-pattern", "stac", "datacube"] = "per-date"
    path: str
    pattern: str | None = Field(None, description="regex with named groups 'band' and 'date'")
    bands: list[str] | None = Field(None, description="bands to use, in order (default: all)")
    scale: float | None = Field(None, description="overrides the files' scale factor")
    offset: float | None = Field(None, description="overrides the files' offset")
    nodata: float | None = Field(None, description="overrides the files' nodata value")
    quality_band: str | None = Field(None, description="scene classification band, e.g. SCL")
    valid_range: tuple[float, float] | None = Field(
        None, description="physical values outside this range are masked"
    )
    crs: str | None = Field(
        None, description="stac: the CRS to read on (e.g. EPSG:32633; default: most items')"
    )
    resolution: float | None = Field(
        None, gt=0, description="stac: pixel size in CRS units (default: the finest band's)"
    )
    resampling: Literal["bilinear", "nearest", "average", "cubic"] | None = Field(
        None,
        description="stac: how reflectance bands at another resolution or CRS are resampled "
        "(default: bilinear, or average onto a coarser grid; class bands: always nearest/mode)",
    )
    bounds: tuple[float, float, float, float] | None = Field(
        None,
        description="stac: left, bottom, right, top in the CRS (default: the labels' extent, "
        "else the items')",
    )


class TableSpec(BaseModel):
    """Time series a user already extracted (Earth Engine, sits, EuroCrops-style exports).

    ``long``: one row per sample and date (CSV or Parquet) with sample id, label, date and one
    column per band, optionally lon/lat (or x/y) and a region column that splits one table into
    several regions. ``wide``: one text line per sample, the label then one value per date;
    the dates are listed, or given as ``start_date`` and ``step_days``.
    """

    format: Literal["long", "wide"]
    path: str
    bands: list[str] | None = Field(None, description="long: band columns (default: numeric)")
    band: str = Field("ndvi", description="wide: the name of the single band")
    sample_column: str = "sample_id"
    label_column: str = "label"
    date_column: str = "date"
    x_column: str | None = Field(None, description="e.g. longitude")
    y_column: str | None = Field(None, description="e.g. latitude")
    crs: str = Field("EPSG:4326", description="CRS of x/y")
    region_column: str | None = None
    region_value: str | None = Field(None, description="keep only rows of this region")
    dates: list[str] | None = Field(None, description="wide: one ISO date per value column")
    start_date: str | None = Field(None, description="wide: date of the first value")
    step_days: int | None = Field(None, description="wide: days between values")
    scale: float = 1.0
    offset: float = 0.0
    label_names: str | None = Field(
        None, description="taxonomy name tag of this data set's labels (e.g. 'tiselac')"
    )


class PublishedResults(BaseModel):
    """Results a paper reports on a region, so that a report can put ours beside them."""

    reference: str
    metric: Literal["overall_accuracy", "macro_f1", "kappa"] = "overall_accuracy"
    labels: str = Field(description="what target labels the published methods used")
    results: dict[str, float]


class RegionEntry(BaseModel):
    """Where one region's data are; relative paths are relative to the catalog file.

    Either rasters plus labelled fields (``tiles`` as a shorthand for a per-date folder, or a
    full ``raster`` spec; ``labels`` and ``label_column``), or a pre-extracted ``table``.
    """

    name: str
    role: Literal["source", "target"]
    tiles: str | None = None
    raster: RasterSpec | None = None
    labels: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    labels_layer: str | None = Field(None, description="layer of a multi-layer label file")
    x_column: str | None = Field(None, description="point labels in a CSV: x / longitude")
    y_column: str | None = Field(None, description="point labels in a CSV: y / latitude")
    labels_crs: str = Field("EPSG:4326", description="CRS of x/y in a CSV of points")
    drop_unknown: bool = Field(
        False,
        description="drop labels the taxonomy does not know (counted in the summary) instead "
        "of refusing the region",
    )
    table: TableSpec | None = None
    non_crop_pixels: int = Field(
        0,
        ge=0,
        description="random pixels away from every field to add as class non_crop "
        "(cropmeta.ingest.pixels; `preprocess --non-crop-pixels` overrides)",
    )
    season: dict | None = Field(
        None, description="temporal grid: start_doy, end_doy, step (default: the tool's)"
    )
    crs: str | None = Field(None, description="informational; the data's own CRS is authoritative")
    description: str = ""
    published: PublishedResults | None = Field(
        None, description="accuracies published for this region, shown beside ours by evaluate"
    )

    def raster_spec(self) -> RasterSpec | None:
        if self.raster is not None:
            return self.raster
        return RasterSpec(path=self.tiles) if self.tiles else None

    def input_paths(self) -> list[str]:
        """The files and folders this region is read from, as written in the catalog."""
        raster = self.raster_spec()
        paths = [raster.path if raster else None, self.labels, self.table and self.table.path]
        return [p for p in paths if p]


class Catalog(BaseModel):
    """A set of regions and the taxonomy their labels use."""

    name: str
    taxonomy: str = "taxonomy.yaml"
    regions: list[RegionEntry]
    root: Path = Field(default=Path("."), exclude=True)

    def region(self, name: str) -> RegionEntry:
        for r in self.regions:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.regions)
        raise InputError(self.root, f"no region named {name!r} in the catalog (known: {known})")

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()

    def load_taxonomy(self, extra: str | os.PathLike[str] | None = None) -> Taxonomy:
        """The catalog's taxonomy, with a user's taxonomy file ``extra`` merged over it."""
        local = self.root / self.taxonomy
        return load_taxonomy(local if local.exists() else CATALOG_DIR / self.taxonomy, extra)

    def inputs(self, names: list[str] | None = None) -> list[Path]:
        """Every file a command reads through this catalog for the regions ``names`` (default:
        all): outputs must never land on them."""
        chosen = [r for r in self.regions if names is None or r.name in names]
        return [self.path(p) for r in chosen for p in r.input_paths()]

    def sources(self) -> list[RegionEntry]:
        return [r for r in self.regions if r.role == "source"]

    def targets(self) -> list[RegionEntry]:
        return [r for r in self.regions if r.role == "target"]


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Load and validate a region catalog YAML."""
    p = Path(path)
    try:
        cat = Catalog.model_validate(read_yaml(p))
    except ValidationError as exc:
        raise InputError(p, first_error(exc)) from None
    cat.root = p.resolve().parent
    return cat


def write_catalog(catalog: Catalog, path: str | os.PathLike[str]) -> None:
    """Write a catalog as YAML (paths stay as given, relative to the file)."""
    data = catalog.model_dump(mode="json")
    Path(path).write_text(
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
