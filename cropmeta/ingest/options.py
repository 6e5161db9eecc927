"""How a region's rasters and fields become samples, declared once.

:class:`PreprocessOptions` is what `cropmeta preprocess` builds from its flags, what
:func:`~cropmeta.ingest.preprocess.preprocess_region`, :func:`~cropmeta.ingest.preprocess.
preprocess_unlabelled` and :func:`~cropmeta.ingest.catalog_regions.preprocess_catalog_region`
take (or their keyword arguments of the same names), and what a catalog region's ``season``,
``drop_unknown`` and ``non_crop_pixels`` fill in. Where the data come from (tiles, labels and
how to read them) and where the result goes are the functions' own arguments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cropmeta.ingest.aggregate import Statistic
from cropmeta.ingest.prepare import TemporalGrid

Sampling = Literal["field", "pixels"]


class PreprocessOptions(BaseModel):
    """The choices of a preprocessing run (see :func:`~cropmeta.ingest.preprocess.
    preprocess_region` for what each does); recorded in every region dataset."""

    model_config = ConfigDict(extra="forbid")

    grid: TemporalGrid | None = Field(
        None, description="day-of-year grid (None: a catalog region's season, else the default)"
    )
    bands: list[str] | None = Field(None, description="bands to keep, in order (None: all)")
    invalid_classes: list[int] | None = Field(
        None, description="quality-band classes to mask (None: SCL's clouds, shadows, snow…)"
    )
    min_valid_fraction: float = Field(
        0.2, ge=0, le=1, description="drop series with a smaller share of valid acquisitions"
    )
    statistic: Statistic = Field("mean", description="per-field statistic of the pixels")
    sampling: Sampling = Field("field", description="a sample per field, or random pixels")
    pixels_per_field: int = Field(10, ge=1, description="with sampling='pixels'")
    buffer: float = Field(0.0, ge=0, description="metres polygons shrink by")
    min_pixels: int = Field(4, ge=1, description="drop polygons with fewer pixels")
    drop_unknown: bool = Field(False, description="drop labels the taxonomy does not know")
    non_crop_pixels: int = Field(0, ge=0, description="random pixels outside the fields")
    non_crop_margin: float = Field(20.0, ge=0, description="metres from the nearest field")
    seed: int = Field(0, description="random pixels and non-crop pixels")

    def updated(self, **changes) -> PreprocessOptions:
        """A validated copy with ``changes`` (names checked: a typo is an error, not ignored)."""
        return PreprocessOptions.model_validate(self.model_dump() | changes)


def preprocess_options(options: PreprocessOptions | None, **changes) -> PreprocessOptions:
    """``options`` (default: the defaults) with keyword ``changes`` applied, validated."""
    return (options or PreprocessOptions()).updated(**changes)
