"""From pixels to samples: per-field statistics and per-pixel sampling, one date at a time.

Fields are given as a raster of field numbers (1..n, 0 outside any field), burnt from the label
geometries with the tiles' transform. Reading goes window by window, so memory stays bounded by
a block of rows (the median keeps the valid field pixels of one date).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from cropmeta.ingest.prepare import Preparation

Statistic = Literal["mean", "median"]
Progress = Callable[[int, int], None]


def _group_median(fid: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values`` (band, pixel) per group ``fid`` (1..n) → (band, n); NaN if empty."""
    counts = np.bincount(fid, minlength=n + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts > 0
    lo = (starts + (counts - 1) // 2)[has]
    hi = (starts + counts // 2)[has]
    out = np.full((values.shape[0], n + 1), np.nan, np.float32)
    for b, band in enumerate(values):
        ranked = band[np.lexsort((band, fid))]
        out[b, has] = (ranked[lo] + ranked[hi]) / 2
    return out[:, 1:]


def field_statistics(
    stack,
    ids: np.ndarray,
    n_fields: int,
    prep: Preparation,
    statistic: Statistic = "mean",
    min_share: float = 0.3,
    progress: Progress | None = None,
) -> np.ndarray:
    """Mean or median of each field's valid pixels per date → (time, band, field).

    A field whose valid pixels on a date are fewer than ``min_share`` of its pixels (a cloud over
    most of it) gets NaN for that date; temporal regularisation fills it later.
    """
    n_bands = len(prep.bands)
    pixels = np.bincount(ids.ravel(), minlength=n_fields + 1)[1:]
    out = np.full((len(stack.dates), n_bands, n_fields), np.nan, np.float32)
    for t in range(len(stack.dates)):
        counts = np.zeros(n_fields + 1)
        sums = np.zeros((n_bands, n_fields + 1))
        kept_ids, kept_values = [], []
        for win in stack.windows():
            values = stack.read(t, prep, win)
            block = ids[
                win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width
            ]
            ok = (block > 0) & ~np.isnan(values).any(axis=0)
            fid = block[ok]
            counts += np.bincount(fid, minlength=n_fields + 1)
            if statistic == "mean":
                for b in range(n_bands):
                    sums[b] += np.bincount(fid, weights=values[b][ok], minlength=n_fields + 1)
            else:
                kept_ids.append(fid)
                kept_values.append(values[:, ok])
        enough = counts[1:] >= np.maximum(1, min_share * pixels)
        if statistic == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                stat = sums[:, 1:] / counts[1:]
        else:
            stat = _group_median(
                np.concatenate(kept_ids), np.concatenate(kept_values, axis=1), n_fields
            )
        out[t][:, enough] = stat[:, enough]
        if progress:
            progress(t + 1, len(stack.dates))
    return out


def sample_pixels(
    ids: np.ndarray, per_field: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``per_field`` random pixels of every field → (rows, cols, field number), sorted."""
    flat = np.flatnonzero(ids)
    fid = ids.ravel()[flat]
    order = np.lexsort((rng.random(len(flat)), fid))  # random order within each field
    flat, fid = flat[order], fid[order]
    first = np.concatenate([[0], np.flatnonzero(np.diff(fid)) + 1])
    rank = np.arange(len(fid)) - np.repeat(first, np.diff(np.append(first, len(fid))))
    pick = np.sort(flat[rank < per_field])
    rows, cols = np.unravel_index(pick, ids.shape)
    return rows, cols, ids[rows, cols]


def pixel_values(
    stack, rows: np.ndarray, cols: np.ndarray, prep: Preparation, progress: Progress | None = None
) -> np.ndarray:
    """Masked reflectance of the given pixels on every date → (time, band, pixel)."""
    out = np.full((len(stack.dates), len(prep.bands), len(rows)), np.nan, np.float32)
    for t in range(len(stack.dates)):
        for win in stack.windows():
            inside = (rows >= win.row_off) & (rows < win.row_off + win.height)
            inside &= (cols >= win.col_off) & (cols < win.col_off + win.width)
            if inside.any():
                values = stack.read(t, prep, win)
                out[t][:, inside] = values[
                    :, rows[inside] - win.row_off, cols[inside] - win.col_off
                ]
        if progress:
            progress(t + 1, len(stack.dates))
    return out
