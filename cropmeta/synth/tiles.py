"""Writing one acquisition as a Sentinel-2 L2A-like GeoTIFF, in row blocks.

Bands 1-10 are processing-baseline-04.00 digital numbers (DN = reflectance × 10000 + 1000,
nodata 0) with GDAL scale/offset so that reflectance = DN × 0.0001 − 0.1; band 11 is SCL.
Rows are produced and written 256 at a time, so memory stays bounded for 4096² tiles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from cropmeta.synth.clouds import CIRRUS, CLOUD_MEDIUM, NO_DATA
from cropmeta.synth.phenology import BANDS
from cropmeta.synth.regions import spacecraft

BLOCK = 256
DESCRIPTIONS = (*BANDS, "SCL")


def tile_name(region: str, day: dt.date) -> str:
    return f"S2_{region.upper()}_{day:%Y%m%d}_L2A.tif"


def encode(refl: np.ndarray, scl: np.ndarray) -> np.ndarray:
    """Reflectance block (bands × rows × cols, overwritten) and SCL → uint16 (11 × rows × cols).

    DN = round(reflectance × 10000) + 1000 clipped to 1..65535; no-data (SCL 0) pixels are 0.
    """
    out = np.empty((refl.shape[0] + 1, *refl.shape[1:]), np.uint16)
    refl *= 10000.0
    refl += 1000.5  # + 0.5 and truncation = rounding (values are positive after clipping)
    np.clip(refl, 1, 65535, out=refl)
    np.copyto(out[:-1], refl, casting="unsafe")
    out[-1] = scl
    out[:-1, scl == NO_DATA] = 0
    return out


def write_tile(
    path: Path,
    day: dt.date,
    crs: str,
    transform: Affine,
    size: tuple[int, int],
    make_block: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    extra_tags: dict[str, str],
) -> float:
    """Write one date; ``make_block(r0, r1)`` returns (reflectance, SCL) for rows r0:r1.

    Returns the share of cloud/cirrus pixels (also stored as tag CLOUDY_PIXEL_PERCENTAGE).
    """
    height, width = size
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=len(DESCRIPTIONS),
        dtype="uint16",
        crs=crs,
        transform=transform,
        nodata=0,
        tiled=True,
        blockxsize=BLOCK,
        blockysize=BLOCK,
        compress="deflate",
        zlevel=1,
        predictor=2,
        num_threads=2,
    )
    cloudy = 0
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, height, BLOCK):
            r1 = min(r0 + BLOCK, height)
            refl, scl = make_block(r0, r1)
            cloudy += int(((scl >= CLOUD_MEDIUM) & (scl <= CIRRUS)).sum())
            dst.write(encode(refl, scl), window=Window(0, r0, width, r1 - r0))
        n = len(BANDS)
        dst.descriptions = DESCRIPTIONS
        dst.scales = (0.0001,) * n + (1.0,)
        dst.offsets = (-0.1,) * n + (0.0,)
        share = cloudy / (height * width)
        dst.update_tags(
            ACQUISITION_DATE=day.isoformat(),
            SPACECRAFT=spacecraft(day),
            PRODUCT_TYPE="S2MSI2A",
            PROCESSING_BASELINE="05.09",
            BOA_QUANTIFICATION_VALUE="10000",
            CLOUDY_PIXEL_PERCENTAGE=f"{100 * share:.2f}",
            **extra_tags,
        )
        for b, name in enumerate(BANDS, start=1):
            dst.update_tags(b, BOA_ADD_OFFSET="-1000", BANDNAME=name)
        dst.update_tags(n + 1, BANDNAME="SCL")
    return share
