"""Farmland layout: road grid, blocks split into elongated parcels, rotated and clipped.

Parcels are built as rectangles in a local frame (roads every 0.6-2.4 km, blocks cut into
strips of varying width, strips cut into fields), rotated by the region's angle and clipped to
the tile. Fields keep 1-3 px margins so that no two polygons touch, and the image is drawn by
rasterizing exactly these polygons, so anyone rasterizing the labels recovers the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize

from cropmeta.synth.regions import RegionSpec

FIELD, UNLABELLED, FOREST, VILLAGE, WATER, ROAD = range(6)
KIND_NAMES = {FOREST: "forest", VILLAGE: "village", WATER: "water", ROAD: "road"}
MIN_FIELD_PX = 20


@dataclass
class Parcels:
    """Polygons in map coordinates and their kind (FIELD, UNLABELLED, FOREST, ...)."""

    geoms: np.ndarray
    kind: np.ndarray


def _positions(extent: float, spacing: tuple[float, float], rng: np.random.Generator) -> list:
    pos = [-extent / 2 - rng.uniform(0, spacing[1])]
    while pos[-1] < extent / 2:
        pos.append(pos[-1] + rng.uniform(*spacing))
    return pos


def _split_block(box: tuple, spec: RegionSpec, rng: np.random.Generator, size: float) -> list:
    """Cut a farm block into strips of varying width, and strips into elongated fields."""
    u0, v0, u1, v1 = box
    along_u = (u1 - u0 >= v1 - v0) == (rng.random() < 0.75)
    length, across = (u1 - u0, v1 - v0) if along_u else (v1 - v0, u1 - u0)
    median = spec.field_ha * 100 * size
    lo, hi = (a * 100 * size for a in spec.field_ha_range)
    m = float(rng.choice([1.0, 2.0, 3.0], p=[0.7, 0.25, 0.05]))  # margin between fields
    rects = []
    y = 0.0
    while across - y > 3 + m:
        w = float(np.clip(rng.lognormal(math.log(math.sqrt(median / 3.0)), 0.35), 3, 60)) + m
        w = across - y if across - (y + w) < 3 + m else w
        x = 0.0
        while length - x > 3 + m:
            area = float(np.clip(rng.lognormal(math.log(median), 0.55), lo, hi))
            step = float(np.clip(area / (w - m), 1.2 * (w - m), 10 * (w - m))) + m
            step = length - x if length - (x + step) < 0.5 * step else step
            a, b, c, d = x + m / 2, x + step - m / 2, y + m / 2, y + w - m / 2
            rects.append(
                (u0 + a, v0 + c, u0 + b, v0 + d) if along_u else (u0 + c, v0 + a, u0 + d, v0 + b)
            )
            x += step
        y += w
    return rects


def _carve(box: tuple, rng: np.random.Generator) -> tuple[tuple, list[tuple]]:
    """Split a block into a corner sub-block (for forest, village or lake) and the rest."""
    u0, v0, u1, v1 = box
    fu, fv = rng.uniform(0.35, 0.9, 2)
    cu = u0 + fu * (u1 - u0) if rng.random() < 0.5 else u1 - fu * (u1 - u0)
    cv = v0 + fv * (v1 - v0) if rng.random() < 0.5 else v1 - fv * (v1 - v0)
    left, low = cu > (u0 + u1) / 2, cv > (v0 + v1) / 2
    corner = (u0 if left else cu, v0 if low else cv, cu if left else u1, cv if low else v1)
    gap = 2.0
    rest = [
        (cu + gap, v0, u1, v1) if left else (u0, v0, cu - gap, v1),
        (corner[0], cv + gap, corner[2], v1) if low else (corner[0], v0, corner[2], cv - gap),
    ]
    return corner, [r for r in rest if r[2] - r[0] > 8 and r[3] - r[1] > 8]


def layout(
    spec: RegionSpec,
    height: int,
    width: int,
    transform: Affine,
    rng: np.random.Generator,
    size: float = 1.0,
    road_scale: float = 1.0,
) -> Parcels:
    """Lay out roads, forest, villages, water and fields over a ``height`` × ``width`` tile.

    ``size`` scales field areas and ``road_scale`` the road spacing (the tiny test world uses
    smaller blocks so that a forest or village cannot fill its whole tile).
    """
    th = math.radians(spec.angle_deg)
    ext_u = width * math.cos(th) + height * math.sin(th) + 8
    ext_v = width * math.sin(th) + height * math.cos(th) + 8
    spacing = (spec.road_spacing_px[0] * road_scale, spec.road_spacing_px[1] * road_scale)
    us = _positions(ext_u, spacing, rng)
    vs = _positions(ext_v, spacing, rng)
    rw_u = rng.uniform(1.5, 2.5, len(us))
    rw_v = rng.uniform(1.5, 2.5, len(vs))
    rects, kinds, others = [], [], []
    for u, r in zip(us, rw_u, strict=True):
        others.append((shapely.box(u - r / 2, vs[0], u + r / 2, vs[-1]), ROAD))
    for v, r in zip(vs, rw_v, strict=True):
        others.append((shapely.box(us[0], v - r / 2, us[-1], v + r / 2), ROAD))
    p_forest, p_village, p_water = spec.landcover_p
    for i in range(len(us) - 1):
        for j in range(len(vs) - 1):
            box = (
                us[i] + rw_u[i] / 2 + 1,
                vs[j] + rw_v[j] / 2 + 1,
                us[i + 1] - rw_u[i + 1] / 2 - 1,
                vs[j + 1] - rw_v[j + 1] / 2 - 1,
            )
            draw = rng.random()
            farm = [box]
            if draw < p_forest + p_village + p_water:
                sub, farm = _carve(box, rng)
                if draw < p_forest:
                    others.append((shapely.box(*sub), FOREST))
                elif draw < p_forest + p_village:
                    others.append((shapely.box(*sub), VILLAGE))
                else:
                    a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
                    cu, cv = (sub[0] + sub[2]) / 2, (sub[1] + sub[3]) / 2
                    ru, rv = (sub[2] - sub[0]) * 0.45, (sub[3] - sub[1]) * 0.45
                    lake = shapely.Polygon(np.c_[cu + ru * np.cos(a), cv + rv * np.sin(a)])
                    others.append((lake, WATER))
            for part in farm:
                new = _split_block(part, spec, rng, size)
                rects += new
                kinds += [UNLABELLED if rng.random() < spec.unlabelled_p else FIELD for _ in new]
    geoms = np.concatenate([np.array([g for g, _ in others]), shapely.box(*np.array(rects).T)])
    kind = np.array([k for _, k in others] + kinds, dtype=np.int8)
    rot = np.array([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]])

    def to_map(xy: np.ndarray) -> np.ndarray:
        colrow = xy @ rot + [width / 2, height / 2]
        return np.column_stack(
            [transform.c + transform.a * colrow[:, 0], transform.f + transform.e * colrow[:, 1]]
        )

    tile = shapely.box(
        transform.c,
        transform.f + transform.e * height,
        transform.c + transform.a * width,
        transform.f,
    )
    geoms = shapely.intersection(shapely.transform(geoms, to_map), tile)
    keep = (shapely.get_type_id(geoms) == 3) & (shapely.area(geoms) > 0)
    return Parcels(geoms[keep], kind[keep])


def rasterize_parcels(parcels: Parcels, height: int, width: int, transform: Affine) -> np.ndarray:
    """Raster of parcel index + 1 (0 = verge/margin); fields are burnt last so they win."""
    order = np.argsort(-parcels.kind, kind="stable")
    shapes = ((parcels.geoms[i], int(i) + 1) for i in order)
    return rasterize(shapes, out_shape=(height, width), transform=transform, fill=0, dtype="int32")


def assign_classes(
    n: int, freq: dict[int, float], rng: np.random.Generator, min_count: int = 5
) -> np.ndarray:
    """Draw ``n`` crop codes from ``freq``; top up rare classes to ``min_count`` where possible."""
    codes = np.array(sorted(freq))
    p = np.array([freq[c] for c in codes], dtype=float)
    out = rng.choice(codes, size=n, p=p / p.sum())
    need = min(min_count, n // len(codes))
    for c in codes:
        short = need - int((out == c).sum())
        if short > 0:
            values, counts = np.unique(out, return_counts=True)
            donors = np.flatnonzero(out == values[np.argmax(counts)])
            out[rng.choice(donors, size=short, replace=False)] = c
    return out


def write_fields(path: Path, spec: RegionSpec, geoms: np.ndarray, labels: list[str]) -> None:
    """Write labelled fields as layer "fields": field_id, local label column, area_ha, geometry."""
    frame = gpd.GeoDataFrame(
        {
            "field_id": np.arange(1, len(geoms) + 1, dtype=np.int64),
            spec.label_column: labels,
            "area_ha": shapely.area(geoms) / 10_000.0,
        },
        geometry=geoms,
        crs=f"EPSG:{spec.epsg}",
    )
    frame.to_file(path, layer="fields", driver="GPKG", engine="pyogrio")
