"""Task information: what is known about a region besides its labelled series.

Task-informed meta-learning (TIML; Tseng, Kerner & Rolnick 2022, "TIML: Task-Informed
Meta-Learning for Agriculture", arXiv:2202.02124) conditions the model on such metadata. Here a
task is a region, and its information is where it lies: the spherical centroid of its samples,
encoded as the point on the unit sphere (cos φ cos λ, cos φ sin λ, sin φ) for latitude φ and
longitude λ, as TIML encodes locations. The encoding is continuous across the antimeridian and
the poles, which raw degrees are not.

The region's season start is left out on purpose: regions meta-trained together must share the
temporal grid (:func:`~cropmeta.ingest.prepare.incompatibility`), so its day of year is the same
for every task and carries no information.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyproj
import xarray as xr

#: Length of the task-information vector.
INFO_DIM = 3
log = logging.getLogger(__name__)


def sphere_point(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Degrees of longitude and latitude → unit vectors (..., 3) on the sphere."""
    lam, phi = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def location_info(x: np.ndarray, y: np.ndarray, crs: str) -> np.ndarray | None:
    """The encoded spherical centroid of points (x, y) given in ``crs``: float32 (INFO_DIM,).

    Each point is taken to longitude/latitude and onto the sphere; the mean vector, scaled back
    to unit length, is the centroid (a plain mean of degrees fails across the antimeridian).
    None when no point has finite coordinates.
    """
    to_lonlat = pyproj.Transformer.from_crs(
        pyproj.CRS.from_user_input(crs), "EPSG:4326", always_xy=True
    )
    lon, lat = (
        np.asarray(v, float)
        for v in to_lonlat.transform(np.asarray(x, float), np.asarray(y, float))
    )
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return None
    mean = sphere_point(lon[ok], lat[ok]).mean(0)
    return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)


def region_info(path: str | Path) -> np.ndarray | None:
    """The task information of the region dataset at ``path``, from its sample centroids and CRS.

    Reads only the coordinates, not the series. None (with a warning) when the dataset has no
    usable coordinates: only task-informed learners need them, and they then see a zero vector.
    """
    try:
        ds = xr.open_zarr(path, consolidated=None)
        info = location_info(ds["cx"].values, ds["cy"].values, ds.attrs["crs"])
    except (KeyError, pyproj.exceptions.ProjError) as exc:  # no cx, cy or crs; unknown CRS
        _warn_once(path, f"{exc.__class__.__name__}: {exc}")
        return None
    if info is None:
        _warn_once(path, "no sample has finite coordinates")
    return info


_warned: set[str] = set()


def _warn_once(path: str | Path, why: str) -> None:
    """Say once per dataset and process that it carries no location (evaluations adapt to the
    same region many times)."""
    if str(path) not in _warned:
        _warned.add(str(path))
        log.warning("%s: no task information (%s)", path, why)
