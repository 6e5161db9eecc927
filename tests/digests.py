"""Content digests of cropmeta's outputs, for the "no behaviour change" check (issue 20).

A region dataset's digest covers every variable and coordinate and the attributes that describe
the data (not `provenance`, which names paths and library versions); a raster's digest covers
its pixels, CRS, transform and nodata (not the GDAL tags that name software).
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr

# the reference outputs, recorded before issue 20's restructuring (tests/end_to_end/test_demo.py)
RECORDED = Path(__file__).with_name("data") / "demo_digests.json"


def _update(h: "hashlib._Hash", name: str, values: np.ndarray) -> None:
    h.update(name.encode())
    h.update(str(values.dtype).encode() + str(values.shape).encode())
    h.update(np.ascontiguousarray(values).tobytes())


def region_digest(path: Path) -> str:
    h = hashlib.sha256()
    with xr.open_zarr(path) as ds:
        for name in sorted(ds.variables):
            _update(h, str(name), ds[name].values)
        attrs = {k: v for k, v in ds.attrs.items() if k != "provenance"}
    h.update(json.dumps(attrs, sort_keys=True).encode())
    return h.hexdigest()


def raster_digest(path: Path) -> str:
    h = hashlib.sha256()
    with rasterio.open(path) as src:
        _update(h, "pixels", src.read())
        h.update(src.crs.to_wkt().encode() + str(tuple(src.transform)).encode())
        h.update(str(src.nodata).encode())
    return h.hexdigest()


def demo_digests(out: Path) -> dict[str, str]:
    """Digests of a `cropmeta demo` run's region datasets and crop map."""
    digests = {f"regions/{p.name}": region_digest(p) for p in sorted(out.glob("regions/*.zarr"))}
    for tif in sorted(out.glob("map-*.tif")):
        digests[tif.name] = raster_digest(tif)
    return digests
