"""The region dataset: the contract between preprocessing and everything after it.

An ``xarray.Dataset`` saved as Zarr (format 2, consolidated):

======================  ==========================  =============================================
variable / coord        dims                        meaning
======================  ==========================  =============================================
``x``                   (sample, time, band)        surface reflectance (0–1), regular grid, float32
``code``                (sample)                    shared crop code (taxonomy), int16
``label``               (sample)                    the region's local label name
``field_id``            (sample)                    the id of the field in the label file
``valid_fraction``      (sample)                    share of in-season acquisitions that were valid
``n_pixels``            (sample)                    pixels aggregated into the sample
``cx``, ``cy``          (sample)                    sample centroid in the dataset's CRS
``time``                (time)                      grid dates (season year + day of year)
``doy``                 (time)                      day of year of each grid step
``band``                (band)                      band names
======================  ==========================  =============================================

Attributes: ``region`` (name), ``crs`` (WKT), ``preparation`` (JSON of
:class:`~cropmeta.ingest.prepare.Preparation`), ``classes`` (JSON list of {code, name, colour}),
``acquisition_dates`` (JSON list), ``summary`` (JSON counts of kept and dropped fields),
``provenance`` (JSON: inputs, parameters, cropmeta and library versions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from cropmeta.errors import InputError, atomic_output
from cropmeta.ingest.prepare import Preparation

REQUIRED = ("x", "code", "label", "field_id")


def save_region(ds: xr.Dataset, path: str | Path) -> Path:
    """Write atomically: the store appears at ``path`` only when complete."""
    with atomic_output(path) as tmp:
        ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
    return Path(path)


def open_region(path: str | Path) -> xr.Dataset:
    """Load a region dataset into memory, checking it is one."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "region dataset not found")
    try:
        ds = xr.open_zarr(p, consolidated=None).load()
    except Exception as exc:  # zarr raises many kinds for a folder that is not a store
        raise InputError(p, f"not a Zarr region dataset ({exc.__class__.__name__})") from None
    missing = [v for v in REQUIRED if v not in ds]
    if missing or "preparation" not in ds.attrs:
        raise InputError(
            p, f"not a cropmeta region dataset (missing {', '.join(missing) or 'attrs'})"
        )
    return ds


@dataclass
class RegionArrays:
    """A region dataset as arrays for training: series (sample, time, band), codes, day of year."""

    name: str
    x: np.ndarray
    codes: np.ndarray
    doy: np.ndarray
    preparation: Preparation
    classes: dict[int, dict]

    @property
    def class_names(self) -> dict[int, str]:
        return {c: info["name"] for c, info in self.classes.items()}

    @classmethod
    def load(cls, path: str | Path) -> RegionArrays:
        ds = open_region(path)
        classes = {int(c["code"]): c for c in json.loads(ds.attrs["classes"])}
        return cls(
            name=str(ds.attrs.get("region", Path(path).stem)),
            x=ds["x"].values.astype(np.float32),
            codes=ds["code"].values.astype(np.int64),
            doy=ds["doy"].values.astype(np.int32),
            preparation=Preparation.model_validate_json(ds.attrs["preparation"]),
            classes=classes,
        )
