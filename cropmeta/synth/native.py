"""One date of the synthetic world at Sentinel-2's native resolutions, and writing it as COGs.

The world stores every band at 10 m (:mod:`cropmeta.synth.tiles`); providers deliver B05-B07,
B8A, B11, B12 and SCL at 20 m, B01 and B09 at 60 m. The downsampling here is exactly
invertible, so tests can compare a reader's output with the truth pixel for pixel:

* a 20 m (60 m) reflectance DN is the mean of the valid (non-zero) 10 m DNs of its 2×2 (6×6)
  block, rounded half up in integer arithmetic;
* SCL at 20 m is the 10 m SCL of each block's top-left pixel (a fixed pixel, not the mode), and
  a block whose top-left pixel is no-data is no-data in every band at that resolution, so the
  coarse bands and their SCL agree on where data are;
* blocks cut by the grid's right or bottom edge average the pixels they have.

B01 and B09 do not exist in the world: they are stand-ins, B01 the 6×6 mean of B02 and B09 the
6×6 mean of B8A (10 m), so a reader can load and resample them, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds

from cropmeta.synth.phenology import BANDS

#: Native ground sampling distance (m) of every band providers deliver.
NATIVE_RES = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
}
#: The 60 m stand-ins and the world band each is averaged from.
STAND_INS = {"B01": "B02", "B09": "B8A"}
#: Tiles split on 60 m block edges keep every resolution's blocks aligned with the world's.
ALIGN_PX = 6


def block_mean(dn: np.ndarray, fixed: np.ndarray, f: int) -> np.ndarray:
    """``dn`` (rows × cols uint16, 0 = no data) averaged over f×f blocks, as uint16.

    The mean is over the block's non-zero pixels, rounded half up; blocks whose ``fixed``
    (top-left, already subsampled) pixel is False are 0.
    """
    h, w = dn.shape
    hp, wp = -(-h // f) * f, -(-w // f) * f
    padded = np.zeros((hp, wp), np.int64)
    padded[:h, :w] = dn
    blocks = padded.reshape(hp // f, f, wp // f, f)
    sums = blocks.sum(axis=(1, 3))
    counts = (blocks > 0).sum(axis=(1, 3))
    out = (2 * sums + counts) // np.maximum(2 * counts, 1)
    out[~fixed | (counts == 0)] = 0
    return out.astype(np.uint16)


def upsample(coarse: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling: each coarse value over its f×f fine pixels, cut to shape."""
    fine = np.repeat(np.repeat(coarse, f, axis=-2), f, axis=-1)
    return fine[..., : shape[0], : shape[1]]


def true_colour(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """The TCI (``visual``) image: reflectance 0-0.2 stretched to 1-255, 0 = no data."""
    rgb = np.stack([red, green, blue]).astype(np.float32)
    tci = np.clip((rgb - 1000.0) * (255.0 / 2000.0), 1, 255).astype(np.uint8)
    tci[rgb == 0] = 0
    return tci


@dataclass
class Native:
    """One date on the region's grid: every delivered raster at its native resolution.

    ``rasters`` maps (product, resolution in m) to an array (bands × rows × cols): the bands of
    :data:`NATIVE_RES`, ``SCL`` (20 m, uint8), ``AOT`` and ``WVP`` (10 and 20 m: providers
    differ), ``TCI`` (10 m, 3 × uint8). ``x0``/``y0`` is the grid's upper-left corner and
    ``shape`` its 10 m size.
    """

    rasters: dict[tuple[str, int], np.ndarray]
    x0: float
    y0: float
    shape: tuple[int, int]

    def transform(self, res: int, col0: int = 0) -> Affine:
        return Affine(float(res), 0.0, self.x0 + 10.0 * col0, 0.0, -float(res), self.y0)

    def window(self, key: tuple[str, int], col0: int, col1: int) -> np.ndarray:
        """Columns ``col0:col1`` (10 m pixels, multiples of :data:`ALIGN_PX`) of a raster."""
        f = key[1] // 10
        return self.rasters[key][:, :, col0 // f : -(-col1 // f)]


def native_date(data: np.ndarray, x0: float, y0: float, doy: int) -> Native:
    """Derive every native-resolution raster from one world tile (11 × rows × cols uint16)."""
    dn = {name: data[i] for i, name in enumerate(BANDS)}
    scl10 = data[len(BANDS)]
    valid = {f: scl10[::f, ::f] != 0 for f in (1, 2, 6)}
    rasters = {("SCL", 20): scl10[::2, ::2].astype(np.uint8)[None]}
    for name, res in NATIVE_RES.items():
        f = res // 10
        source = dn[STAND_INS.get(name, name)]
        rasters[name, res] = (source if f == 1 else block_mean(source, valid[f], f))[None]
    # aerosol optical thickness (0.001) and water vapour (0.001 cm): constant over a date
    for res in (10, 20):
        mask = valid[res // 10]
        rasters["AOT", res] = np.where(mask, 60 + (doy * 7) % 140, 0).astype(np.uint16)[None]
        rasters["WVP", res] = np.where(mask, 600 + (doy * 13) % 2400, 0).astype(np.uint16)[None]
    rasters["TCI", 10] = true_colour(dn["B04"], dn["B03"], dn["B02"])
    return Native(rasters, x0, y0, scl10.shape)


def reference_tile(native: Native, world: np.ndarray) -> np.ndarray:
    """The per-date 11-band layout of the same pixels: 10 m bands as the world has them, 20 m
    bands and SCL each 20 m value repeated over its 2×2 10 m pixels."""
    out = world.copy()
    for i, name in enumerate(BANDS):
        if NATIVE_RES[name] == 20:
            out[i] = upsample(native.rasters[name, 20][0], 2, native.shape)
    out[len(BANDS)] = upsample(native.rasters["SCL", 20][0], 2, native.shape)
    return out


def harmonize(dn: np.ndarray) -> np.ndarray:
    """Remove the baseline-04.00 offset as earth-search does: DN − 1000, at least 1; 0 stays 0."""
    out = np.maximum(dn.astype(np.int32) - 1000, 1).astype(np.uint16)
    out[dn == 0] = 0
    return out


def reproject_to(
    data: np.ndarray, src_transform: Affine, src_crs: str, dst_crs: str, res: int, nearest: bool
) -> tuple[np.ndarray, Affine]:
    """Warp a raster into another CRS on a grid of the same resolution aligned to 60 m.

    Reflectance is resampled bilinearly, classes (``nearest``) by nearest neighbour; pixels the
    source does not cover are 0 (no data).
    """
    h, w = data.shape[-2:]
    left, top = src_transform.c, src_transform.f
    bounds = transform_bounds(src_crs, dst_crs, left, top - h * res, left + w * res, top)
    x0 = np.floor(bounds[0] / 60) * 60
    y1 = np.ceil(bounds[3] / 60) * 60
    cols = int(np.ceil((bounds[2] - x0) / 60)) * 60 // res
    rows = int(np.ceil((y1 - bounds[1]) / 60)) * 60 // res
    dst_transform = Affine(float(res), 0.0, float(x0), 0.0, -float(res), float(y1))
    out = np.zeros((data.shape[0], rows, cols), data.dtype)
    reproject(
        data,
        out,
        src_transform=src_transform,
        src_crs=src_crs,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        src_nodata=0,
        dst_nodata=0,
        resampling=Resampling.nearest if nearest else Resampling.bilinear,
    )
    return out, dst_transform


def write_cog(
    path: Path,
    data: np.ndarray,
    transform: Affine,
    crs: str,
    blocksize: int,
    categorical: bool = False,
) -> None:
    """Write ``data`` (bands × rows × cols) as a Cloud-Optimized GeoTIFF with GDAL's COG driver.

    Deflate with the horizontal predictor, internal tiles of ``blocksize`` px, and overviews
    down to one tile (averaged; nearest for class rasters). No scale/offset is stored in the
    file: as in the providers' COGs, that lives in the STAC item only. The driver writes no
    timestamps, so the same arrays give the same bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="COG",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=transform,
        nodata=0,
        compress="deflate",
        predictor=2,
        blocksize=blocksize,
        overview_resampling="nearest" if categorical else "average",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
