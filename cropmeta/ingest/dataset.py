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
``band_mean``           (band)                      per-band mean of ``x`` (normalisation stats)
``band_std``            (band)                      per-band standard deviation of ``x``
``time``                (time)                      grid dates (season year + day of year)
``doy``                 (time)                      day of year of each grid step
``band``                (band)                      band names
======================  ==========================  =============================================

Attributes: ``region`` (name), ``crs`` (WKT), ``preparation`` (JSON of
:class:`~cropmeta.ingest.prepare.Preparation`), ``classes`` (JSON list of {code, name, colour,
local_names, count}: shared code and name from the taxonomy, the region's own label names),
``acquisition_dates`` (JSON list), ``summary`` (JSON counts of kept and dropped fields),
``provenance`` (JSON: inputs, parameters, cropmeta and library versions).

An *unlabelled* region dataset (``preprocess --unlabelled``: the target region's fields or
random pixels, for transductive adaptation) has the same schema and preparation, plus the root
attribute ``unlabelled: true``; its ``code`` is :data:`UNLABELLED_CODE` everywhere, ``label``
is empty and ``classes`` is ``[]``. It loads like any other (:meth:`RegionArrays.load`), so
``adapt --unlabelled`` reads it; every stage that needs labels refuses it with one line
(:meth:`RegionArrays.require_labels`, or ``RegionArrays.load(path, require_labels=True)``).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import numpy as np
import xarray as xr

import cropmeta
from cropmeta.errors import InputError, atomic_output
from cropmeta.ingest.prepare import Preparation
from cropmeta.ownership import ZARR_ATTR
from cropmeta.taxonomy import Taxonomy

REQUIRED = ("x", "code", "label", "field_id")
#: The ``code`` of every sample of an unlabelled dataset: no taxonomy code is negative.
UNLABELLED_CODE = -1
#: The root attribute that marks an unlabelled dataset (``True``); absent on labelled ones.
UNLABELLED_ATTR = "unlabelled"
#: Why a stage that needs labels refuses an unlabelled dataset (after the file's name).
UNLABELLED_ONLY = (
    "holds unlabelled samples only (preprocess --unlabelled); labels are needed here: "
    "give it to adapt as --unlabelled"
)


@dataclass
class Samples:
    """What a reader (rasters or tables) hands over: regular series and per-sample facts."""

    series: np.ndarray  # (step, band, sample), no NaN
    codes: np.ndarray
    labels: np.ndarray
    field_ids: np.ndarray
    valid_fraction: np.ndarray
    n_pixels: np.ndarray
    cx: np.ndarray
    cy: np.ndarray


def joined(first: Samples, second: Samples) -> Samples:
    """The samples of ``first`` then those of ``second``."""
    return Samples(
        **{
            name: np.concatenate([getattr(first, name), getattr(second, name)], axis=-1)
            for name in Samples.__dataclass_fields__
        }
    )


def provenance(**parameters) -> dict:
    """Inputs and parameters of a run, with the versions of cropmeta and its main libraries."""
    libraries = ("numpy", "pandas", "rasterio", "geopandas", "xarray", "zarr")
    return {
        **parameters,
        "versions": {
            "cropmeta": cropmeta.__version__,
            "python": platform.python_version(),
            **{m: version(m) for m in libraries},
        },
    }


def class_table(samples: Samples, taxonomy: Taxonomy) -> list[dict]:
    """The ``classes`` attribute: per shared code its taxonomy name and colour, the region's
    own label names for it and its sample count."""
    classes = []
    for code in sorted(set(samples.codes.tolist())):
        c = taxonomy.by_code(code)
        mine = samples.codes == code
        local = sorted(set(samples.labels[mine].astype(str).tolist()))
        classes.append(
            {
                "code": c.code,
                "name": c.name,
                "colour": c.colour,
                "local_names": local,
                "count": int(mine.sum()),
            }
        )
    return classes


def build_region_dataset(
    samples: Samples,
    *,
    region: str,
    prep: Preparation,
    season_start: date,
    crs_wkt: str,
    taxonomy: Taxonomy | None,
    acquisition_dates: list[str],
    summary: dict,
    inputs: dict,
    unlabelled: bool = False,
) -> xr.Dataset:
    """The one builder of the schema above, used by every reader.

    ``unlabelled`` builds an unlabelled dataset: every code must be :data:`UNLABELLED_CODE`,
    no class is listed (``taxonomy`` may be None), and the :data:`UNLABELLED_ATTR` attribute
    marks it.
    """
    grid = prep.grid
    times = [np.datetime64(season_start + timedelta(days=int(o))) for o in grid.offsets()]
    x = np.transpose(samples.series, (2, 0, 1)).astype(np.float32)
    flat = x.reshape(-1, x.shape[-1])
    if unlabelled and (samples.codes != UNLABELLED_CODE).any():
        raise ValueError("an unlabelled dataset's codes must all be UNLABELLED_CODE")
    if not unlabelled and taxonomy is None:
        raise ValueError("a labelled dataset needs the taxonomy of its codes")
    classes = [] if unlabelled or taxonomy is None else class_table(samples, taxonomy)
    return xr.Dataset(
        {
            "x": (("sample", "time", "band"), x),
            "code": ("sample", samples.codes.astype(np.int16)),
            "label": ("sample", samples.labels.astype(str)),
            "field_id": ("sample", samples.field_ids),
            "valid_fraction": ("sample", samples.valid_fraction.astype(np.float32)),
            "n_pixels": ("sample", samples.n_pixels.astype(np.int32)),
            "cx": ("sample", samples.cx.astype(np.float64)),
            "cy": ("sample", samples.cy.astype(np.float64)),
            "band_mean": ("band", flat.mean(0) if len(flat) else np.zeros(x.shape[-1])),
            "band_std": ("band", flat.std(0) if len(flat) else np.zeros(x.shape[-1])),
        },
        coords={
            "time": np.array(times, dtype="datetime64[ns]"),
            "doy": ("time", grid.doys()),
            "band": prep.bands,
        },
        attrs={
            "region": region,
            "crs": crs_wkt,
            "preparation": prep.model_dump_json(),
            "classes": json.dumps(classes, ensure_ascii=False),
            "acquisition_dates": json.dumps(acquisition_dates),
            "summary": json.dumps(summary),
            "provenance": json.dumps(provenance(**inputs), default=str),
            **({UNLABELLED_ATTR: True} if unlabelled else {}),
        },
    )


def save_region(ds: xr.Dataset, path: str | Path) -> Path:
    """Write atomically: the store appears at ``path`` only when complete."""
    marked = ds.assign_attrs({ZARR_ATTR: "region-dataset"})
    with atomic_output(path) as tmp:
        marked.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
    return Path(path)


def is_unlabelled(ds: xr.Dataset) -> bool:
    """Whether ``ds`` (an open region dataset) holds unlabelled samples only."""
    return bool(ds.attrs.get(UNLABELLED_ATTR, False))


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
    """A region dataset as arrays for training: series (sample, time, band), codes, day of year.

    ``labelled`` is False for an unlabelled dataset (its codes are all :data:`UNLABELLED_CODE`
    and ``classes`` is empty): stages that need labels call :meth:`require_labels`.
    """

    name: str
    x: np.ndarray
    codes: np.ndarray
    doy: np.ndarray
    preparation: Preparation
    classes: dict[int, dict]
    labelled: bool = True

    @property
    def class_names(self) -> dict[int, str]:
        return {c: info["name"] for c, info in self.classes.items()}

    def require_labels(self, path: str | Path) -> RegionArrays:
        """``self`` when labelled, else :class:`InputError` naming ``path`` (the file it was
        read from): meta-training sources, ``adapt --region``, evaluations need labels, and an
        unlabelled dataset's sentinel codes must never be read as a class."""
        if not self.labelled:
            raise InputError(path, UNLABELLED_ONLY)
        return self

    @classmethod
    def load(cls, path: str | Path, *, require_labels: bool = False) -> RegionArrays:
        """Read a region dataset, refusing one whose series hold NaN or infinite values
        (preprocessing never writes them; a missing Zarr chunk reads back as NaN).

        Labelled and unlabelled datasets are both read (``adapt --unlabelled`` uses only the
        series of either); ``require_labels`` refuses an unlabelled one, before its series are
        checked, with one line naming ``path``.
        """
        ds = open_region(path)
        if require_labels and is_unlabelled(ds):
            raise InputError(path, UNLABELLED_ONLY)
        classes = {int(c["code"]): c for c in json.loads(ds.attrs["classes"])}
        return cls(
            name=str(ds.attrs.get("region", Path(path).stem)),
            x=_finite_series(path, ds["x"].values.astype(np.float32)),
            codes=ds["code"].values.astype(np.int64),
            doy=ds["doy"].values.astype(np.int32),
            preparation=Preparation.model_validate_json(ds.attrs["preparation"]),
            classes=classes,
            labelled=not is_unlabelled(ds),
        )


def _finite_series(path: str | Path, x: np.ndarray) -> np.ndarray:
    """``x`` when every value is finite, else :class:`InputError` saying how many are not."""
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        problem = f"{bad} of {x.size} values of x are NaN or infinite"
        hint = "a data chunk of the store may be missing or damaged; preprocess the region again"
        raise InputError(path, f"{problem}: {hint}")
    return x
