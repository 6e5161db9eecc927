"""``make_world``: write the deterministic synthetic multi-region Sentinel-2 world to disk.

Per region: lay out parcels, rasterize them once, compute each parcel's clean reflectance
series (parcels × dates × bands) once, then per date apply that date's residual gain and haze
(imperfect atmospheric correction), index the table with the parcel raster, add within-field
texture, noise and the date's sky, and write the GeoTIFF in row blocks.
Every region draws from its own random streams seeded by (seed, region index, purpose), so a
region's files do not depend on which other regions are requested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyogrio
from affine import Affine
from scipy.ndimage import gaussian_filter

from cropmeta.catalog import Catalog, RegionEntry, write_catalog
from cropmeta.errors import InputError, atomic_output
from cropmeta.ownership import claim, mark_folder
from cropmeta.synth import fields as fl
from cropmeta.synth import phenology as ph
from cropmeta.synth.clouds import apply_sky, draw_sky, sensor_noise
from cropmeta.synth.regions import REGION_NAMES, REGIONS, RegionSpec, acquisition_dates
from cropmeta.synth.tiles import tile_name, write_tile
from cropmeta.taxonomy import Taxonomy, load_taxonomy

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Scale:
    """World size: tile px of sources/targets (None = the region's own), dates, field/block size."""

    source_px: int | None
    target_px: int | None
    n_dates: tuple[int, int] | None
    field_size: float
    road_scale: float


SCALES = {
    "demo": Scale(None, None, None, 1.0, 1.0),
    "tiny": Scale(128, 112, (10, 14), 0.6, 0.5),
    "bench": Scale(None, None, (24, 24), 1.0, 1.0),  # the demo world with exactly 24 dates
}


def _rng(seed: int, region: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, region, purpose])


@contextmanager
def _fixed_gpkg_date() -> Iterator[None]:
    """GeoPackages record a modification time; pin it so reruns are byte-identical."""
    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2023-12-31T00:00:00Z"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def _series(
    kind: np.ndarray, codes: np.ndarray, doy: np.ndarray, spec: RegionSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Clean reflectance (parcels+1 × dates × bands) and green fraction; row 0 is the verge."""
    soil = ph.soil_spectrum(spec) * rng.uniform(0.85, 1.05, (1, len(doy), 1)).astype(np.float32)
    table = np.empty((len(kind) + 1, len(doy), len(ph.BANDS)), np.float32)
    green = np.empty((len(kind) + 1, len(doy)), np.float32)
    table[:1], green[:1] = ph.landcover("verge", doy, 1, soil, rng)
    farm = (kind == fl.FIELD) | (kind == fl.UNLABELLED)
    for code in np.unique(codes[farm]):
        rows = np.flatnonzero(farm & (codes == code))
        g, d, f = ph.fractions(int(code), doy, len(rows), spec, rng)
        field_soil = ph.field_soils(soil, len(rows), rng)
        veg = ph.crop_veg(int(code), rng, len(rows))
        table[rows + 1], green[rows + 1] = ph.mix(g, d, f, field_soil, veg), g
    for k, name in fl.KIND_NAMES.items():
        rows = np.flatnonzero(kind == k)
        if len(rows):
            table[rows + 1], green[rows + 1] = ph.landcover(name, doy, len(rows), soil, rng)
    return table, green


#: Relative path radiance of a residual haze per band (strongest in blue, ~0 in SWIR).
HAZE_SHAPE = np.array([1.0, 0.75, 0.55, 0.45, 0.38, 0.32, 0.27, 0.25, 0.08, 0.03], np.float32)


def _radiometry(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A date's residual atmospheric/BRDF error: a gain (± ~3-8 %) and an additive haze per band.

    L2A correction is imperfect: aerosol and view/sun-geometry residuals change every band of a
    whole scene together by a few per cent, with a small band-to-band spread.
    """
    common = float(np.clip(rng.normal(0.0, 0.045), -0.08, 0.08))
    gain = 1.0 + common + rng.normal(0.0, 0.012, len(ph.BANDS))
    haze = float(rng.uniform(0.0, 0.012)) * HAZE_SHAPE
    return gain.astype(np.float32), haze.astype(np.float32)


@dataclass
class _Plan:
    """A region's grid, parcel raster and crop codes (0 = fallow) of labelled/unlabelled parcels."""

    transform: Affine
    cover: np.ndarray
    parcels: fl.Parcels
    kind: np.ndarray
    codes: np.ndarray
    labelled: np.ndarray


def _plan(spec: RegionSpec, rng: np.random.Generator, size: int, scale: Scale) -> _Plan:
    """Lay out and rasterize parcels; fields under 20 px become unlabelled; draw crop classes."""
    x0, y0 = spec.origin(size, size)
    transform = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    parcels = fl.layout(spec, size, size, transform, rng, scale.field_size, scale.road_scale)
    cover = fl.rasterize_parcels(parcels, size, size, transform)
    kind = parcels.kind.copy()
    pixels = np.bincount(cover.ravel(), minlength=len(kind) + 1)[1:]
    kind[(kind == fl.FIELD) & (pixels < fl.MIN_FIELD_PX)] = fl.UNLABELLED
    labelled = np.flatnonzero(kind == fl.FIELD)
    codes = np.zeros(len(kind), np.int64)
    codes[labelled] = fl.assign_classes(len(labelled), spec.class_freq, rng)
    others = np.flatnonzero(kind == fl.UNLABELLED)
    codes[others] = rng.choice([0, 0, *spec.class_freq], size=len(others))
    return _Plan(transform, cover, parcels, kind, codes, labelled)


def _region(
    spec: RegionSpec,
    index: int,
    root: Path,
    seed: int,
    size: int,
    scale: Scale,
    taxonomy: Taxonomy,
    tick: Callable[[str], None],
) -> RegionEntry:
    """Write one region's fields and tiles; return its catalog entry."""
    dates = acquisition_dates(spec, _rng(seed, index, 0), scale.n_dates)
    doy = np.array([d.timetuple().tm_yday for d in dates])
    plan = _plan(spec, _rng(seed, index, 1), size, scale)
    table, green = _series(plan.kind, plan.codes, doy, spec, _rng(seed, index, 2))
    out = root / spec.name
    (out / "tiles").mkdir(parents=True)
    names = [taxonomy.local_name(int(c), spec.language) for c in plan.codes[plan.labelled]]
    fl.write_fields(out / "fields.gpkg", spec, plan.parcels.geoms[plan.labelled], names)
    tick(f"{spec.name}: {len(plan.labelled)} fields")

    cover, crs = plan.cover, f"EPSG:{spec.epsg}"
    tex = gaussian_filter(_rng(seed, index, 3).standard_normal((size, size), np.float32), 2.5)
    tex *= np.float32(1.0 / max(float(tex.std()), 1e-6))
    dveg = (0.08 * (ph.VEG - ph.soil_spectrum(spec)))[:, None, None]
    for d, day in enumerate(dates):
        date_rng = _rng(seed, index, 100 + d)
        sky = draw_sky(date_rng, size, size, int(doy[d]), spec)
        values, gd = np.ascontiguousarray(table[:, d, :].T), green[:, d]
        gain, haze = _radiometry(date_rng)
        values = values * gain[:, None] + haze[:, None]

        def block(r0: int, r1: int, values=values, gd=gd, rng=date_rng, sky=sky):
            idx = cover[r0:r1]
            refl = np.take(values, idx, axis=1)
            refl += (tex[r0:r1] * np.take(gd, idx)) * dveg  # patchy canopy density
            refl += sensor_noise(rng, refl.shape, spec.noise)
            return refl, apply_sky(sky, refl, r0)

        write_tile(
            out / "tiles" / tile_name(spec.name, day),
            day,
            crs,
            plan.transform,
            (size, size),
            block,
            {"REGION": spec.name},
        )
        tick(f"{spec.name}: {day.isoformat()}")
    return RegionEntry(
        name=spec.name,
        role=spec.role,
        tiles=f"{spec.name}/tiles",
        labels=f"{spec.name}/fields.gpkg",
        label_column=spec.label_column,
        id_column="field_id",
        crs=crs,
        description=(
            f"Synthetic {spec.title} ({spec.country}), {spec.role}: {len(plan.labelled)} "
            f"labelled fields, {len(dates)} Sentinel-2 L2A dates {dates[0]:%Y-%m-%d} to "
            f"{dates[-1]:%Y-%m-%d}, UTM zone {spec.utm_zone}N, labels in '{spec.language}'."
        ),
    )


#: :func:`land_cover`'s value of pixels outside every parcel (the grass verges between them).
VERGE = 255


def land_cover(
    region: str, seed: int = 0, scale: str = "demo", tile_size: int | None = None
) -> np.ndarray:
    """The truth behind a region's tiles as :func:`make_world` with the same arguments writes
    them: per pixel, the kind of land (:data:`cropmeta.synth.fields.FIELD`, ``UNLABELLED``,
    ``FOREST``, ``VILLAGE``, ``WATER``, ``ROAD``; :data:`VERGE` between parcels), on the tiles'
    grid. Recomputed from the seed, nothing is read: to check a map against what is there."""
    index = REGION_NAMES.index(region)
    spec, conf = REGIONS[index], SCALES[scale]
    own = conf.source_px if spec.role == "source" else conf.target_px
    size = tile_size or own or spec.tile_px
    plan = _plan(spec, _rng(seed, index, 1), size, conf)
    kinds = np.concatenate([[VERGE], plan.kind]).astype(np.uint8)
    return kinds[plan.cover]


def make_world(
    out: str | Path,
    seed: int = 0,
    regions: list[str] | None = None,
    tile_size: int | None = None,
    scale: Literal["tiny", "demo", "bench"] = "demo",
    progress: Progress | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the world under `out` and return the path of `out/catalog.yaml`.

    ``regions`` picks built-in regions (default all), ``tile_size`` forces square tiles of that
    many pixels, ``scale`` picks "demo", the very small "tiny" world (for tests) or "bench"
    (the demo world with 24 dates per region, for benchmarks), and ``progress(stage, done,
    total)`` is called as regions and dates are written. The same
    arguments always give byte-identical files; ``out`` is replaced atomically.
    """
    names = list(dict.fromkeys(REGION_NAMES if regions is None else regions))
    if not names:
        raise InputError(str(out), "no regions requested")
    for name in names:
        if name not in REGION_NAMES:
            raise InputError(name, f"unknown region (known: {', '.join(REGION_NAMES)})")
    if scale not in SCALES:
        raise InputError(str(scale), f"unknown scale (known: {', '.join(SCALES)})")
    if tile_size is not None and tile_size < 16:
        raise InputError(str(tile_size), "tile size must be at least 16 px")
    claim(out, "world", overwrite=overwrite)
    conf = SCALES[scale]
    taxonomy = load_taxonomy()
    total = sum(
        len(
            acquisition_dates(
                REGIONS[REGION_NAMES.index(n)], _rng(seed, REGION_NAMES.index(n), 0), conf.n_dates
            )
        )
        + 1
        for n in names
    )
    done = 0

    def tick(stage: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(stage, done, total)

    entries = []
    with atomic_output(out) as tmp, _fixed_gpkg_date():
        tmp.mkdir(parents=True)
        mark_folder(tmp, "world")
        for name in names:
            index = REGION_NAMES.index(name)
            spec = REGIONS[index]
            own = conf.source_px if spec.role == "source" else conf.target_px
            size = tile_size or own or spec.tile_px
            entries.append(_region(spec, index, tmp, seed, size, conf, taxonomy, tick))
        write_catalog(
            Catalog(name="cropmeta-demo-world", taxonomy="taxonomy.yaml", regions=entries),
            tmp / "catalog.yaml",
        )
    return Path(out) / "catalog.yaml"
