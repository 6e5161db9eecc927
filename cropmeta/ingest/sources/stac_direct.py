"""Reading the STAC assets that already lie on the output grid, without a warp.

Most provider assets need no reprojection: a Sentinel-2 tile's 10 m bands *are* the output
grid when it is snapped to them (:func:`~.stac_plan.choose_grid`), and its 20 and 60 m bands
are that grid coarsened by a whole factor, pixel edges on pixel edges. odc-stac warps every
asset all the same (GDAL's warper, a dask task, a fuser per band and date: ~20 ms per band
and date, 80 % of preprocessing time in ``benchmarks/ingest_stac.py``). Here such assets are
read with one windowed rasterio read each and, where coarser, upsampled in numpy by the rules
of GDAL's warper that odc-stac applies:

* **nearest neighbour** (class bands, or a spec's ``resampling: nearest``): each pixel repeated
  over ``factor × factor`` output pixels;
* **bilinear**: weights by the distance of the output pixel's centre to the four nearest
  asset pixel centres, over the valid ones only (renormalised), an output pixel being valid
  where the asset pixel under its centre is (the warper's rule), the raster's edge pixels
  extended outwards.

Written here rather than asked of GDAL's resampled ``RasterIO`` (rasterio's ``out_shape``),
which fills nodata holes' edges from their neighbours, so that both paths give the same
values: ``tests/ingest/test_stac_direct.py`` compares them to odc-stac's. A day any of whose
items is in another CRS, off the grid or coarsened by no whole factor (or whose resampling is
neither of the above) is left to odc-stac.

Same-day items are mosaicked as odc-stac does: in order of time, then id, the first valid
value winning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from cropmeta.ingest.sources.stac_plan import ItemPlan, acquired, native_grid

#: Resamplings done here (for assets coarser than the grid); others are odc-stac's.
DIRECT_RESAMPLING = frozenset({"nearest", "bilinear"})
#: How far off a whole number a grid offset or factor may be (in output pixels).
TOLERANCE = 1e-6


class UnreadableAsset(Exception):
    """A read of ``href`` failed; GDAL's complaint is the cause."""

    def __init__(self, href: str) -> None:
        super().__init__(href)
        self.href = href


@dataclass(frozen=True)
class Placed:
    """One asset (a band of one item) on the output grid: ``factor`` output pixels per asset
    pixel along each axis, its top-left corner at output pixel (``row``, ``col``)."""

    href: str
    band_no: int
    factor: int
    row: int
    col: int
    height: int  # asset pixels
    width: int
    method: str  # "nearest" or "bilinear"


def place(
    href: str,
    band_no: int,
    native: tuple[CRS, Affine, int, int],
    grid: tuple[CRS, Affine],
    method: str,
) -> Placed | None:
    """``href``'s band on the grid, or None where it is not on it (another CRS, a rotation, a
    pixel size no whole multiple of the grid's, pixel edges off the grid's)."""
    crs, transform, width, height = native
    grid_crs, grid_transform = grid
    res = grid_transform.a
    if crs != grid_crs or transform.b or transform.d or transform.a != -transform.e:
        return None
    factor, col, row = (
        transform.a / res,
        (transform.c - grid_transform.c) / res,
        (grid_transform.f - transform.f) / res,
    )
    if any(abs(v - round(v)) > TOLERANCE for v in (factor, col, row)) or round(factor) < 1:
        return None
    method = "nearest" if round(factor) == 1 else method
    if method not in DIRECT_RESAMPLING:
        return None
    return Placed(href, band_no, round(factor), round(row), round(col), height, width, method)


def mosaic(
    assets: list[Placed], box: tuple[int, int, int, int], nodata: float | None
) -> np.ndarray:
    """The float32 values of ``box`` (row, col, rows, cols of the grid) from ``assets`` (the
    day's items in mosaic order), the first valid value winning; ``nodata`` (NaN where there
    is none) where no asset has one."""
    rows, cols = box[2], box[3]
    empty = np.float32(np.nan if nodata is None else nodata)
    out, filled = None, np.zeros((rows, cols), dtype=bool)
    for asset in assets:
        part = read_placed(asset, box, nodata)
        if part is None:
            continue
        (r0, r1, c0, c1), values, valid = part
        if out is None and valid is None and (r1 - r0, c1 - c0) == (rows, cols):
            return values  # the first asset has every pixel
        if out is None:
            out = np.full((rows, cols), empty, dtype=np.float32)
        take = ~filled[r0:r1, c0:c1]
        if valid is not None:
            take &= valid
        np.copyto(out[r0:r1, c0:c1], values, where=take)
        filled[r0:r1, c0:c1] |= take
        if filled.all():
            break
    return np.full((rows, cols), empty, dtype=np.float32) if out is None else out


def read_placed(
    asset: Placed, box: tuple[int, int, int, int], nodata: float | None
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray | None] | None:
    """The part of ``box`` that ``asset`` covers (rows r0:r1, cols c0:c1 of the box), its
    values there and where they are valid (None: everywhere); None where it covers none of
    it."""
    row0, col0, rows, cols = box
    k = asset.factor
    top, bottom = max(row0, asset.row), min(row0 + rows, asset.row + asset.height * k)
    left, right = max(col0, asset.col), min(col0 + cols, asset.col + asset.width * k)
    if top >= bottom or left >= right:
        return None
    # the asset pixels under those output pixels, and one more each side for bilinear
    margin = 1 if asset.method == "bilinear" and k > 1 else 0
    rows_at = _span(top - asset.row, bottom - asset.row, k, margin, asset.height)
    cols_at = _span(left - asset.col, right - asset.col, k, margin, asset.width)
    window = Window(cols_at[0], rows_at[0], cols_at[1] - cols_at[0], rows_at[1] - rows_at[0])
    try:
        with rasterio.open(asset.href) as src:
            raw = src.read(asset.band_no, window=window)
    except Exception as exc:  # GDAL, HTTP and decompression errors
        raise UnreadableAsset(asset.href) from exc
    # beyond the raster's edge, its edge pixels extended (as the warper does at its edges)
    raw = np.pad(raw, (rows_at[2:], cols_at[2:]), mode="edge")
    valid = np.ones(raw.shape, dtype=bool) if nodata is None else raw != nodata
    if raw.dtype.kind == "f":
        valid &= ~np.isnan(raw)
    inner = (slice(margin, raw.shape[0] - margin), slice(margin, raw.shape[1] - margin))
    everywhere = bool(valid.all())
    out_valid = None if everywhere else _repeat(valid[inner], k)
    if k == 1 or asset.method == "nearest":
        values = _repeat(raw[inner], k).astype(np.float32, copy=False)
    elif everywhere:
        values = _upsample(_upsample(raw.astype(np.float32), k, 0), k, 1)
    else:  # over the valid neighbours only
        num = _upsample(_upsample(np.where(valid, raw, 0).astype(np.float32), k, 0), k, 1)
        den = _upsample(_upsample(valid.astype(np.float32), k, 0), k, 1)
        out_valid &= den > 0
        values = np.divide(num, den, out=np.zeros_like(num), where=out_valid)
    # the first row (column) upsampled is output row (column) asset.row + k × the first read
    r = top - asset.row - k * ((top - asset.row) // k)
    c = left - asset.col - k * ((left - asset.col) // k)
    cut = (slice(r, r + bottom - top), slice(c, c + right - left))
    where = (top - row0, bottom - row0, left - col0, right - col0)
    return where, values[cut], None if out_valid is None else out_valid[cut]


def _span(start: int, stop: int, k: int, margin: int, size: int) -> tuple[int, int, int, int]:
    """Asset pixels under output pixels ``start:stop`` (counted from the asset's corner), with
    ``margin`` more each side: the part inside the raster (first, end) and how many pixels
    lie beyond each of its edges."""
    first, end = start // k - margin, (stop - 1) // k + 1 + margin
    inside = max(0, first), min(size, end)
    return inside[0], inside[1], inside[0] - first, end - inside[1]


def _repeat(values: np.ndarray, k: int) -> np.ndarray:
    """Each pixel over k × k pixels (nearest neighbour)."""
    return values if k == 1 else np.repeat(np.repeat(values, k, axis=0), k, axis=1)


def _upsample(values: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` (0 or 1) to ``k`` pixels per pixel, pixel centres on
    pixel centres: ``values`` holds one neighbour more each side, the result none."""
    n = values.shape[axis] - 2
    shape = list(values.shape)
    shape[axis] = n * k
    out = np.empty(shape, dtype=np.float32)

    def along(start: int, stop: int | None, step: int = 1) -> tuple[slice, ...]:
        cut = slice(start, stop, step)
        return (cut, slice(None)) if axis == 0 else (slice(None), cut)

    for phase in range(k):
        u = (phase + 0.5) / k - 0.5  # the output centre, from its pixel's centre, in pixels
        low, high, f = (0, 1, 1 + u) if u < 0 else (1, 2, u)
        target = out[along(phase, None, k)]
        np.multiply(values[along(low, low + n)], 1 - f, out=target)
        if f:
            target += values[along(high, high + n)] * np.float32(f)
    return out


def days_on_grid(
    plan: ItemPlan, bands: list[str], methods: list[str], crs: CRS, transform: Affine
) -> dict[int, dict[str, list[Placed]]]:
    """The days every asset of which lies on the grid (:func:`place`), read without
    odc-stac: date index → band → the day's assets in odc-stac's mosaic order (time, id)."""
    dates = sorted(set(plan.days))
    days: dict[int, dict[str, list[Placed]] | None] = {}
    order = sorted(
        range(len(plan.items)), key=lambda j: (acquired(plan.items[j]), plan.items[j].id)
    )
    for j in order:
        item, bands_of, t = plan.items[j], plan.bands[j], dates.index(plan.days[j])
        day = days.setdefault(t, {band: [] for band in bands})
        if day is None:
            continue  # a day with an asset off the grid
        for band, method in zip(bands, methods, strict=True):
            record = bands_of[band]
            native = native_grid(record, item, plan)
            placed = place(record.href, record.band_no, native, (crs, transform), method)
            if placed is None:
                days[t] = None
                break
            day[band].append(placed)
    return {t: day for t, day in days.items() if day is not None}
