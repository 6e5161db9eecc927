"""Random pixels of the tiles as samples: unlabelled ones for transductive adaptation, and the
``non_crop`` class from pixels outside every field.

A crop map classifies every pixel, so a model that only ever saw fields calls a road, a roof or
a forest the crop it resembles most. With ``preprocess --non-crop-pixels N``, N random pixels
at least ``--non-crop-margin`` metres from every polygon (or point) of the label file become
samples of the taxonomy's ``non_crop`` class, and the model learns to say "not a field". The
label file should then hold every field of the area it covers, labelled or not (a parcel
register): pixels of fields missing from it would be taken as non-crop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio.transform
from scipy import ndimage

from cropmeta.errors import InputError
from cropmeta.ingest.aggregate import pixel_values
from cropmeta.ingest.dataset import UNLABELLED_CODE, Samples
from cropmeta.ingest.prepare import Preparation, regularise
from cropmeta.ingest.sources import RasterStack

Progress = Callable[[int, int], None]
#: Passes over the tiles :func:`random_pixel_samples` makes at most to find N usable pixels.
PIXEL_ROUNDS = 4
#: The taxonomy class of pixels outside every field, and its label in a region dataset.
NON_CROP = "non_crop"
NON_CROP_LABEL = "non-crop (outside the fields)"


def random_pixel_samples(
    stack: RasterStack,
    prep: Preparation,
    n: int,
    rng: np.random.Generator,
    tiles: Path,
    progress: Progress | None,
    allowed: np.ndarray | None = None,
) -> tuple[Samples, dict]:
    """``n`` random pixels of the tiles (of the ``allowed`` ones, a mask on the tiles' grid)
    whose series is usable, as unlabelled samples.

    Each pass draws pixels not drawn before (as many as the usable share seen so far suggests
    are needed, with a margin), reads their series (:func:`pixel_values`, window by window) and
    keeps the usable ones in draw order, so the result is a uniform sample of the valid area.
    Their ``field_id`` is the pixel's index ``row * width + col``.
    """
    pool = None if allowed is None else np.flatnonzero(allowed.ravel())
    total = stack.height * stack.width if pool is None else len(pool)
    if n < 1 or n > total:
        where = "the tiles have" if pool is None else "the area allowed has"
        raise InputError(tiles, f"cannot sample {n} pixels: {where} {total}")
    drawn = np.zeros(0, np.int64)
    kept_flat: list[np.ndarray] = []
    kept_series: list[np.ndarray] = []
    kept_fraction: list[np.ndarray] = []
    found = rounds = unusable = 0
    while found < n and len(drawn) < total and rounds < PIXEL_ROUNDS:
        rounds += 1
        share = found / len(drawn) if len(drawn) else 1.0
        want = int(np.ceil((n - found) / max(share, 0.05) * 1.25)) + 16
        if len(drawn) > total // 4:  # from what is left: few fresh draws would miss it all
            left = np.setdiff1d(np.arange(total), drawn, assume_unique=True)
            fresh = rng.choice(left, size=min(len(left), want), replace=False)
        else:  # the usual case: draws from the whole grid, those seen before dropped
            fresh = rng.choice(total, size=min(total, want), replace=False)
            fresh = fresh[~np.isin(fresh, drawn)]
        drawn = np.concatenate([drawn, fresh])
        flat = fresh if pool is None else pool[fresh]
        rows, cols = np.unravel_index(flat, (stack.height, stack.width))
        obs = pixel_values(stack, rows, cols, prep, progress)
        series, fraction = regularise(obs, stack.doys, prep)
        ok = ~np.isnan(series).any(axis=(0, 1))
        unusable += int(np.count_nonzero(~ok))
        usable = np.flatnonzero(ok)[: n - found]  # in draw order, which is random
        kept_flat.append(flat[usable])
        kept_series.append(series[:, :, usable])
        kept_fraction.append(fraction[usable])
        found += len(usable)
    if found == 0:
        raise InputError(tiles, "no pixel drawn has a usable series (nodata or clouds throughout)")
    flat = np.concatenate(kept_flat)
    order = np.argsort(flat)
    flat = flat[order]
    rows, cols = np.unravel_index(flat, (stack.height, stack.width))
    xs, ys = rasterio.transform.xy(stack.transform, rows, cols)
    summary = {
        "sample_pixels": n,
        "pixels_drawn": int(len(drawn)),
        "passes": rounds,
        "samples": found,
        "too_few_valid_observations": unusable,
        "short_of_request": n - found,
    }
    samples = Samples(
        series=np.concatenate(kept_series, axis=2)[:, :, order],
        codes=np.full(found, UNLABELLED_CODE, np.int16),
        labels=np.full(found, "", dtype=object),
        field_ids=flat,
        valid_fraction=np.concatenate(kept_fraction)[order],
        n_pixels=np.ones(found, np.int32),
        cx=np.asarray(xs, np.float64),
        cy=np.asarray(ys, np.float64),
    )
    return samples, summary


def non_crop_samples(
    stack: RasterStack,
    prep: Preparation,
    fields: np.ndarray,
    n: int,
    margin: float,
    code: int,
    rng: np.random.Generator,
    tiles: Path,
    progress: Progress | None,
) -> tuple[Samples, dict]:
    """``n`` random usable pixels at least ``margin`` metres from every field (``fields``: the
    label file's polygons and points burnt on the tiles' grid, non-zero inside), as samples of
    class ``code``. Their ``field_id`` is ``-(row * width + col) - 1``: never a field's."""
    outside = fields == 0
    if margin > 0 and not outside.all():  # centre-to-centre distance to the nearest field pixel
        sampling = (abs(stack.transform.e), abs(stack.transform.a))
        outside = ndimage.distance_transform_edt(outside, sampling=sampling) > margin
    samples, summary = random_pixel_samples(stack, prep, n, rng, tiles, progress, outside)
    samples.codes = np.full(len(samples.codes), code, np.int16)
    samples.labels = np.full(len(samples.codes), NON_CROP_LABEL, dtype=object)
    samples.field_ids = -samples.field_ids - 1
    return samples, {"non_crop_" + k: v for k, v in summary.items()}
