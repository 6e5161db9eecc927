"""Which fields to label first: a coverage criterion on the meta-model's embedding space.

A user starting in a new region has field polygons but no labels, and a budget of N fields
they can visit. :func:`suggest_labels` embeds every field's time series with the meta-trained
encoder (the representation the head reads after adaptation, so distances there are the ones
few-shot adaptation sees) and picks N fields that *cover* that space, in labelling priority:

* ``kcenter`` (default) — greedy k-center, i.e. farthest-first traversal (Gonzalez, 1985,
  "Clustering to minimize the maximum intercluster distance", Theor. Comput. Sci. 38), the
  core-set criterion of Sener & Savarese (2018), "Active Learning for Convolutional Neural
  Networks: A Core-Set Approach", ICLR. It starts from the field nearest the mean embedding
  (a cheap stand-in for the medoid, linear in the number of fields) and then repeatedly adds
  the field farthest from every field chosen so far. Why this one: the order is nested, so
  the first n of the N suggestions are themselves the greedy choice for a budget of n (a user
  who stops early still holds a good set, and the order *is* the priority); its covering
  radius (the largest distance from any field to its nearest chosen one) is at most twice the
  best possible for that budget, so rare, distinct crops far from the bulk are reached early,
  and few-shot adaptation needs every class represented: a class without a labelled field
  cannot be predicted at all. Its known weakness: it reaches outliers (odd, noisy fields)
  early too.
* ``kmeans`` — k-means with N clusters (scikit-learn, k-means++ seeding, ``random_state`` =
  seed) and, per cluster, the member nearest its centre, largest cluster first: a simplified
  form (nearest centre instead of a density estimate) of TypiClust's "typical samples"
  (Hacohen, Dekel & Weinshall, 2022, "Active Learning on a Budget: Opposite Strategies Suit
  High and Low Budgets", ICML), which beat coverage criteria at very small budgets. Less
  sensitive to outliers; not nested.

Both are deterministic for a given seed. Distances are Euclidean on the encoder output (which
ends in a LayerNorm, so its scale is the same in every region). For ``kcenter`` the seed only
breaks exact ties (identical embeddings), so in practice the choice does not depend on it.

:func:`cropmeta.evaluate.label_budget.compare_with_random` measures on a *labelled* region
dataset whether the criterion's choice adapts the meta-model better than a random choice of
the same size.

Data: unlabelled fields go through the same functions as training data
(:func:`cropmeta.ingest.preprocess.burn_fields`, :func:`cropmeta.ingest.aggregate.
field_statistics`, :func:`cropmeta.ingest.prepare.regularise`) with the model's recorded
:class:`~cropmeta.ingest.prepare.Preparation`; :func:`field_series` is the part of
``preprocess_region`` that does not need labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import torch
from rasterio.transform import array_bounds

from cropmeta.adapt.names import SUGGEST_METHODS
from cropmeta.catalog import RasterSpec
from cropmeta.errors import InputError, atomic_output
from cropmeta.ingest.aggregate import Statistic, field_statistics
from cropmeta.ingest.prepare import Preparation, regularise
from cropmeta.ingest.preprocess import burn_fields
from cropmeta.ingest.sources import RasterStack, open_raster
from cropmeta.models.bundle import BundleConfig, load_bundle, load_config
from cropmeta.models.classifier import CropClassifier
from cropmeta.ownership import TAG, claim

METHODS = SUGGEST_METHODS
Progress = Callable[[int, int], None]

#: A field's date counts as observed when at least this share of its pixels is valid; the value
#: ``preprocess_region`` uses for training data (passed there as a literal).
MIN_SHARE = 0.3
#: Layer name of the suggestions GeoPackage.
LAYER = "suggested_fields"


# --- model and embedding -------------------------------------------------------------------


def load_meta_model(model_dir: str | Path) -> tuple[CropClassifier, BundleConfig]:
    """The meta-trained model in ``model_dir`` (eval mode) and its config.

    An adapted model is refused: its encoder was tuned on one support set, while the criterion
    should see the region as the meta-learner does before any label exists.
    """
    cfg = load_config(model_dir)
    if cfg.kind != "meta":
        raise InputError(
            model_dir,
            f"not a meta-trained model (kind {cfg.kind!r}); give the folder that "
            "`cropmeta meta-train` wrote",
        )
    model, cfg = load_bundle(model_dir)
    return model, cfg


def embed_series(
    model: CropClassifier, cfg: BundleConfig, x: np.ndarray, batch: int = 1024
) -> np.ndarray:
    """Encoder output (sample, embed) of raw series ``x`` (sample, step, band).

    The series are standardised with the model's normaliser, as in training and adaptation;
    day of year comes from the model's temporal grid. Returned as float64 for the distance
    computations of :func:`select_fields`.
    """
    doy = torch.from_numpy(cfg.preparation.grid.doys()).long()
    xs = cfg.normaliser(np.asarray(x, np.float32))
    parts = []
    with torch.no_grad():
        for lo in range(0, len(xs), batch):
            parts.append(model.encoder(torch.from_numpy(xs[lo : lo + batch]), doy).numpy())
    if not parts:
        return np.zeros((0, cfg.encoder.embed))
    return np.concatenate(parts).astype(np.float64)


# --- per-field series of unlabelled polygons ----------------------------------------------


@dataclass
class FieldSeries:
    """Per-field series of polygons without labels, prepared as training data are."""

    x: np.ndarray  # (field, step, band); NaN rows for fields that are not usable
    usable: np.ndarray  # (field,) bool: inside the rasters, large enough, enough valid dates
    pixels: np.ndarray  # (field,) pixels burnt for each field


def check_rasters(cfg: BundleConfig, stack: RasterStack, where: Path) -> None:
    """The rasters hold every band the model's preparation reads and dates in its season."""
    prep = cfg.preparation
    for band in prep.bands + ([prep.quality_band] if prep.quality_band else []):
        stack.band_index(band)
    g = prep.grid
    if not g.in_season(stack.doys).any():
        raise InputError(
            where,
            f"no acquisition inside the model's season (DOY {g.start_doy}–{g.end_doy}); "
            f"the rasters span {stack.dates[0]}..{stack.dates[-1]}",
        )


def field_series(
    stack: RasterStack,
    fields: gpd.GeoDataFrame,
    prep: Preparation,
    *,
    statistic: Statistic = "mean",
    min_pixels: int = 4,
    progress: Progress | None = None,
) -> FieldSeries:
    """One series per polygon of ``fields`` (in the stack's CRS), as ``preprocess_region``
    builds them with ``sampling="field"``: burn the polygons onto the grid, drop polygons with
    fewer than ``min_pixels`` pixels, take the ``statistic`` of each field's valid pixels per
    date, regularise onto ``prep``'s grid. Unlike preprocessing no field is dropped: unusable
    ones are flagged, so rows stay aligned with ``fields``.
    """
    ids = burn_fields(fields, stack)
    pixels = np.bincount(ids.ravel(), minlength=len(fields) + 1)[1:]
    large = pixels >= max(1, min_pixels)
    ids[~np.concatenate([[True], large])[ids]] = 0
    obs = field_statistics(stack, ids, len(fields), prep, statistic, MIN_SHARE, progress)
    series, _ = regularise(obs, stack.doys, prep)
    usable = large & ~np.isnan(series).any(axis=(0, 1))
    return FieldSeries(x=np.transpose(series, (2, 0, 1)), usable=usable, pixels=pixels)


# --- selection -----------------------------------------------------------------------------


@dataclass
class Selection:
    """Chosen rows of an embedding in labelling priority, and how much each one covers."""

    order: np.ndarray  # (budget,) row indices, first = label first
    represents: np.ndarray  # (budget,) rows whose nearest chosen row this one is (itself too)
    radius: np.ndarray  # (budget,) largest distance of those rows to it
    separation: np.ndarray  # (budget,) distance to the nearest other chosen row (NaN if alone)
    method: str


def _distances_to(z: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(n, len(rows)) Euclidean distances, one column at a time (memory n, not n × dim × k)."""
    out = np.empty((len(z), len(rows)))
    for j, r in enumerate(rows):
        out[:, j] = np.sqrt(((z - z[r]) ** 2).sum(axis=1))
    return out


def _pick(scores: np.ndarray, tiebreak: np.ndarray, largest: bool) -> int:
    """Index of the largest (smallest) score; exact ties go to the smallest seeded tiebreak."""
    best = scores.max() if largest else scores.min()
    tied = np.flatnonzero(scores == best)
    return int(tied[np.argmin(tiebreak[tied])])


def _farthest_first(
    z: np.ndarray, start: list[int], budget: int, tiebreak: np.ndarray
) -> list[int]:
    """Extend ``start`` by farthest-first traversal until ``budget`` rows are chosen."""
    chosen = list(start)
    nearest = np.full(len(z), np.inf)
    for r in chosen:
        nearest = np.minimum(nearest, np.sqrt(((z - z[r]) ** 2).sum(axis=1)))
    while len(chosen) < budget:
        candidates = nearest.copy()
        candidates[chosen] = -1.0  # never twice, even among identical embeddings
        r = _pick(candidates, tiebreak, largest=True)
        chosen.append(r)
        nearest = np.minimum(nearest, np.sqrt(((z - z[r]) ** 2).sum(axis=1)))
    return chosen


def _kmeans_medoids(z: np.ndarray, budget: int, seed: int, tiebreak: np.ndarray) -> list[int]:
    """Per k-means cluster the member nearest the centre, largest cluster first."""
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # fewer distinct points than clusters: handled below
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=budget, n_init=10, random_state=seed).fit(z)
    picks = []
    for c in range(budget):
        members = np.flatnonzero(km.labels_ == c)
        if len(members) == 0:
            continue
        d = np.sqrt(((z[members] - km.cluster_centers_[c]) ** 2).sum(axis=1))
        picks.append((-len(members), int(members[_pick(d, tiebreak[members], largest=False)])))
    chosen = list(dict.fromkeys(r for _, r in sorted(picks)))
    # Empty or merged clusters (duplicate embeddings) leave gaps: fill them by coverage.
    return _farthest_first(z, chosen, budget, tiebreak)


def select_fields(
    embedding: np.ndarray, budget: int, seed: int = 0, method: str = "kcenter"
) -> Selection:
    """Choose ``budget`` rows of ``embedding`` (sample, dim) that cover it; see the module
    docstring for the two criteria. Deterministic for a given seed."""
    z = np.asarray(embedding, np.float64)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if not 1 <= budget <= len(z):
        raise ValueError(f"budget {budget} outside 1..{len(z)}")
    tiebreak = np.random.default_rng(seed).random(len(z))
    if method == "kcenter":
        medoid = _pick(((z - z.mean(axis=0)) ** 2).sum(axis=1), tiebreak, largest=False)
        order = np.array(_farthest_first(z, [medoid], budget, tiebreak))
    else:
        order = np.array(_kmeans_medoids(z, budget, seed, tiebreak))
    d = _distances_to(z, order)
    nearest = d.argmin(axis=1)
    represents = np.bincount(nearest, minlength=budget)
    radius = np.array([d[nearest == j, j].max(initial=0.0) for j in range(budget)])
    among = d[order]
    np.fill_diagonal(among, np.inf)
    separation = among.min(axis=1) if budget > 1 else np.array([np.nan])
    return Selection(order, represents, radius, separation, method)


def coverage_radius(embedding: np.ndarray, rows: Sequence[int] | np.ndarray) -> float:
    """Largest distance from any row of ``embedding`` to its nearest row among ``rows``: the
    k-center objective (greedy k-center is within a factor 2 of its minimum)."""
    z = np.asarray(embedding, np.float64)
    return float(_distances_to(z, np.asarray(rows)).min(axis=1).max())


# --- the suggestions for a region ----------------------------------------------------------


def suggest_labels(
    model_dir: str | Path,
    fields: str | Path,
    tiles: str | Path | RasterSpec,
    budget: int,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    method: str = "kcenter",
    statistic: Statistic = "mean",
    min_pixels: int = 4,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> gpd.GeoDataFrame:
    """The ``budget`` fields of ``fields`` to label first, in priority order (saved if ``out``).

    ``fields`` is a polygon file (any CRS; the first layer of a GeoPackage), ``tiles`` the
    region's rasters (a per-date folder or a :class:`RasterSpec` of any layout) and
    ``model_dir`` a meta-trained model. Every field is prepared with the model's recorded
    preparation (:func:`field_series`), embedded by its encoder and the choice made by
    :func:`select_fields`. Fields too small, outside the rasters or with too few valid dates
    cannot be embedded and are never suggested.

    Returns the chosen rows of the file as read — original geometries, attributes and CRS —
    plus ``priority`` (1 = label first), ``source_index`` (0-based row in the file),
    ``represents`` (usable fields whose nearest suggestion in embedding space this one is,
    itself included), ``coverage_radius`` (the largest embedding distance among those),
    ``distance_to_nearest_chosen`` (embedding distance to the nearest other suggestion; NaN
    for a budget of 1) and ``pixels``. Bad input raises :class:`InputError` before anything is
    written; ``out`` appears only when complete, and must not be an input, nor an existing file
    that is not a cropmeta label suggestion file, unless ``overwrite``.
    """
    from cropmeta.mapping.fields import check_overlap, read_polygons

    if method not in METHODS:
        raise InputError("--method", f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if budget < 1:
        raise InputError("--budget", f"must be at least 1 (got {budget})")
    spec = tiles if isinstance(tiles, RasterSpec) else RasterSpec(path=str(tiles))
    if out is not None:
        inputs = [model_dir, fields, spec.path]
        claim(out, "label-suggestions", inputs=inputs, overwrite=overwrite)
    model, cfg = load_meta_model(model_dir)
    stack = open_raster(spec)
    check_rasters(cfg, stack, Path(spec.path))
    fields = Path(fields)
    polygons = read_polygons(fields, stack.crs, "fields")
    check_overlap(
        polygons, array_bounds(stack.height, stack.width, stack.transform), fields, "field"
    )
    if budget > len(polygons):
        raise InputError(fields, f"budget {budget} exceeds the number of fields ({len(polygons)})")
    series = field_series(
        stack,
        polygons,
        cfg.preparation,
        statistic=statistic,
        min_pixels=min_pixels,
        progress=progress,
    )
    usable = np.flatnonzero(series.usable)
    if budget > len(usable):
        raise InputError(
            fields,
            f"budget {budget} exceeds the {len(usable)} of {len(polygons)} fields that have a "
            f"usable series (inside the rasters, at least {min_pixels} pixels, enough valid "
            "dates)",
        )
    z = embed_series(model, cfg, series.x[usable])
    sel = select_fields(z, budget, seed, method)
    chosen = usable[sel.order]
    source = gpd.read_file(fields)  # the rows read_polygons read, before reprojection/repair
    result = source.iloc[chosen].reset_index(drop=True)
    result["priority"] = np.arange(1, budget + 1, dtype=np.int32)
    result["source_index"] = chosen.astype(np.int64)
    result["represents"] = sel.represents.astype(np.int32)
    result["coverage_radius"] = sel.radius
    result["distance_to_nearest_chosen"] = sel.separation
    result["pixels"] = series.pixels[chosen].astype(np.int32)
    result.attrs["method"] = method
    if out is not None:
        with atomic_output(out) as tmp:
            result.to_file(tmp, driver="GPKG", layer=LAYER, metadata={TAG: "label-suggestions"})
    return result
