"""What `cropmeta map` writes and how it runs: one typed config for the CLI and the Python API."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

Uncertainty = Literal["none", "entropy", "margin"]


class MapOptions(BaseModel):
    """Outputs and execution of one mapping run.

    The class map is always written; the probability stack, the uncertainty band, the AOI mask
    and the per-field export are optional. ``workers`` and ``scheduler`` change where blocks
    run, never what they produce: every block is computed with one intra-op thread, so a
    result does not depend on how many processes shared the work.
    """

    block: int = Field(256, ge=16, le=8192, description="block edge in pixels (the unit of work)")
    batch: int = Field(16384, ge=1, le=2**22, description="pixels per forward pass")
    probabilities: bool = Field(False, description="write the per-class probability stack")
    uncertainty: Uncertainty = Field("none", description="uncertainty band: entropy or margin")
    min_probability: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="pixels whose most probable class has a lower probability stay unclassified "
        "(nodata in the class map; their probabilities and uncertainty are still written)",
    )
    aoi: Path | None = Field(None, description="polygons outside which pixels stay nodata")
    fields: Path | None = Field(None, description="field polygons for the per-field export")
    workers: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="local processes (default: the cores not already busy; 1 = in this process)",
    )
    scheduler: str | None = Field(None, description="address of a running Dask scheduler")
    overwrite: bool = Field(
        False, description="replace existing outputs that cropmeta did not write (never inputs)"
    )

    def outputs(self, out: Path) -> dict[str, Path]:
        """Every file a run writes, by kind; the class map is ``out`` itself."""
        paths = {
            "classes": out,
            "legend_json": out.with_suffix(".legend.json"),
            "legend_csv": out.with_suffix(".legend.csv"),
            "qgis_style": out.with_suffix(".qml"),
        }
        if self.probabilities:
            paths["probabilities"] = out.with_suffix(".probabilities.tif")
        if self.uncertainty != "none":
            paths["uncertainty"] = out.with_suffix(f".{self.uncertainty}.tif")
        if self.fields is not None:
            paths["fields"] = out.with_suffix(".fields.gpkg")
        return paths

    def kinds(self, out: Path) -> dict[Path, str | None]:
        """Every file a run writes with its kind of cropmeta output (None: a sidecar without
        a marker of its own, recognised by the crop map's list of its files)."""
        kinds = {"classes": "crop-map", "probabilities": "crop-map-layer"}
        kinds |= {"uncertainty": "crop-map-layer", "fields": "crop-map-fields"}
        paths = {p: kinds.get(kind) for kind, p in self.outputs(out).items()}
        return paths | {pam_path(out): None}


def pam_path(out: Path) -> Path:
    """GDAL's PAM sidecar of the crop map (category names, attribute table)."""
    return out.with_name(out.name + ".aux.xml")
