"""Task variability: how far apart regions' class-conditional distributions are.

Part of the diagnostics of :mod:`cropmeta.evaluate.diagnostics` (read its docstring for the
why and the choice of distance): the unbiased squared MMD (Gretton et al., 2012) with a
median-heuristic RBF kernel between two regions' normalised series of each shared class, and a
within-region reference (two random halves of one class) that says what "small" means.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cropmeta.ingest.dataset import RegionArrays
from cropmeta.ingest.prepare import Normaliser, incompatibility

# --------------------------------------------------------------------------------------------
# Thresholds (documented here; the sentences cite them)
# --------------------------------------------------------------------------------------------

#: Most samples per class and region that enter a distance (a seeded random subset beyond it):
#: MMD²ᵤ's standard error shrinks as 1/n, so 200 gives ≈ 0.005 on unit-scale kernels, far below
#: the between-region figures of interest, at a cost of milliseconds per pair.
MAX_PER_CLASS = 200
#: Fewest samples a class needs in a region to enter its distances (two per half are the
#: minimum of the unbiased estimator; five keep the noise of a single figure moderate).
MIN_PER_CLASS = 5
#: Most pooled samples used to set a class's median-heuristic bandwidth.
MAX_POOL = 1000
#: The target is "farther from the sources than the sources are from each other" when its
#: mean distance to the sources is at least this multiple of the mean source-to-source
#: distance, and "closer" below its inverse; in between, "about as far". A factor 1.5 is a
#: heuristic: differences smaller than that are within what three-region comparisons of
#: noisy per-class figures can resolve.
FARTHER_RATIO = 1.5
#: Distances smaller than this multiple of the within-region reference (two random halves of
#: the same class), or than :data:`NOISE_FLOOR`, are "indistinguishable from sampling noise".
NOISE_FACTOR = 2.0
#: Absolute floor of the noise level (≈ two standard errors of MMD²ᵤ with 100 samples a side).
NOISE_FLOOR = 0.01

# --------------------------------------------------------------------------------------------
# 1. Task variability: class-conditional distances between regions
# --------------------------------------------------------------------------------------------


@dataclass
class TaskDistances:
    """Class-conditional distances between regions (see the module docstring for the method).

    ``matrix[i, j]`` is the mean over the classes regions ``i`` and ``j`` share (each with at
    least ``min_per_class`` samples) of the per-class MMD²ᵤ; NaN where the pair is not
    comparable or shares no class. The diagonal holds the within-region reference of each
    region (the same distance between two random halves of each of its classes, averaged), so
    that off-diagonal figures can be read against it. ``shared[i, j]`` counts the shared
    classes (diagonal: the region's classes with enough samples for halves).
    """

    regions: list[str]
    matrix: np.ndarray
    shared: np.ndarray
    #: (region a, region b) in ``regions`` order → {class code: MMD²ᵤ}
    per_class: dict[tuple[str, str], dict[int, float]]
    #: region → mean within-region reference over its classes (NaN when no class is big enough)
    within: dict[str, float]
    #: region → {class code: MMD²ᵤ between two random halves}
    within_per_class: dict[str, dict[int, float]]
    #: (region a, region b) → why they cannot be compared (different preparations)
    not_comparable: dict[tuple[str, str], str] = field(default_factory=dict)
    #: region → {class code: RBF bandwidth σ used for that class}
    bandwidth: dict[str, dict[int, float]] = field(default_factory=dict)
    #: class code → name, merged over the regions
    class_names: dict[int, str] = field(default_factory=dict)
    method: str = "unbiased MMD² (Gretton et al., 2012), RBF kernel, median-heuristic bandwidth"

    def index(self, region: str) -> int:
        return self.regions.index(region)

    def between(self, a: str, b: str) -> float:
        """Mean distance over shared classes (NaN when not comparable or nothing shared)."""
        return float(self.matrix[self.index(a), self.index(b)])

    def n_shared(self, a: str, b: str) -> int:
        return int(self.shared[self.index(a), self.index(b)])

    def reason(self, a: str, b: str) -> str | None:
        """Why ``a`` and ``b`` cannot be compared, or None when they can."""
        return self.not_comparable.get((a, b)) or self.not_comparable.get((b, a))

    def to_dict(self) -> dict:
        """A JSON-ready view (NaN → None, pairs as "a / b")."""

        def num(v: float) -> float | None:
            return None if not math.isfinite(v) else round(float(v), 6)

        return {
            "method": self.method,
            "regions": list(self.regions),
            "matrix": [[num(v) for v in row] for row in self.matrix],
            "shared": self.shared.tolist(),
            "per_class": {
                f"{a} / {b}": {str(c): num(v) for c, v in d.items()}
                for (a, b), d in self.per_class.items()
            },
            "within": {r: num(v) for r, v in self.within.items()},
            "within_per_class": {
                r: {str(c): num(v) for c, v in d.items()} for r, d in self.within_per_class.items()
            },
            "not_comparable": {f"{a} / {b}": why for (a, b), why in self.not_comparable.items()},
            "bandwidth": {
                r: {str(c): num(v) for c, v in d.items()} for r, d in self.bandwidth.items()
            },
            "class_names": {str(c): n for c, n in self.class_names.items()},
        }


def _rng(seed: int, name: str, code: int, purpose: int) -> np.random.Generator:
    """A generator that depends only on (seed, region, class, purpose): results do not depend
    on the order of the regions or on which other regions are compared."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), int(code) & 0xFFFFFFFF, purpose])


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``a`` and ``b`` (float64, ≥ 0)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def median_bandwidth(x: np.ndarray) -> float:
    """The median heuristic (Gretton et al., 2012, sec. 8): σ = median pairwise distance
    between distinct rows of ``x``; 1.0 when all rows coincide."""
    d = _sq_dists(x, x)[np.triu_indices(len(x), k=1)]
    sigma = float(np.sqrt(np.median(d))) if d.size else 0.0
    return sigma if sigma > 0 else 1.0


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Unbiased MMD² between samples ``x`` (m, d) and ``y`` (n, d), m, n ≥ 2, with the kernel
    k(u, v) = exp(-‖u - v‖² / (2σ²)) (Gretton et al., 2012, eq. 3 / Lemma 6).

    Its expectation is 0 when ``x`` and ``y`` come from one distribution, so it can be
    slightly negative.
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("the unbiased MMD² needs at least two samples on each side")
    g = 1.0 / (2.0 * sigma * sigma)
    kxx = np.exp(-g * _sq_dists(x, x))
    kyy = np.exp(-g * _sq_dists(y, y))
    kxy = np.exp(-g * _sq_dists(x, y))
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def _class_samples(
    r: RegionArrays, name: str, normaliser: Normaliser, max_per_class: int, seed: int
) -> dict[int, np.ndarray]:
    """Per class: a seeded subset (≤ ``max_per_class``) of the region's normalised, flattened
    series, float64, rows with non-finite values dropped."""
    out = {}
    finite = np.isfinite(r.x).all(axis=(1, 2))
    for code in np.unique(r.codes):
        idx = np.flatnonzero((r.codes == code) & finite)
        if len(idx) > max_per_class:
            rng = _rng(seed, name, int(code), 0)
            idx = np.sort(rng.choice(idx, max_per_class, replace=False))
        x = normaliser(r.x[idx])
        out[int(code)] = x.reshape(len(idx), -1).astype(np.float64)
    return out


def _groups(
    regions: Mapping[str, RegionArrays], normaliser: Normaliser
) -> tuple[list[list[str]], dict[str, str]]:
    """Regions split into groups of mutually compatible preparations (compatibility is
    equality of band names and grid, so it is transitive), and regions the normaliser cannot
    standardise (another number of bands) with the reason."""
    groups: list[list[str]] = []
    unusable = {}
    n_bands = len(normaliser.mean)
    for name, r in regions.items():
        if r.x.ndim != 3 or r.x.shape[-1] != n_bands:
            unusable[name] = (
                f"{name} has {r.x.shape[-1] if r.x.ndim == 3 else '?'} bands, "
                f"the source normaliser {n_bands}"
            )
            continue
        for g in groups:
            if incompatibility(regions[g[0]].preparation, r.preparation) is None:
                g.append(name)
                break
        else:
            groups.append([name])
    return groups, unusable


def class_conditional_distances(
    regions: Mapping[str, RegionArrays],
    normaliser: Normaliser,
    *,
    max_per_class: int = MAX_PER_CLASS,
    min_per_class: int = MIN_PER_CLASS,
    seed: int = 0,
) -> TaskDistances:
    """Task variability between regions: for every pair, the mean over the classes both hold
    (with at least ``min_per_class`` samples each) of the unbiased MMD² between the two
    regions' class-conditional distributions of normalised series, plus a within-region
    reference per region (the same distance between two random halves of each class).

    ``normaliser`` must be fitted on the source regions only (the one stored in a model
    bundle); it is applied to every region, targets included, so distances are in the units
    the model sees. Pairs whose preparations differ (bands or temporal grid,
    :func:`cropmeta.ingest.prepare.incompatibility`) are marked not comparable.
    Deterministic for a given ``seed`` (subsets depend only on seed, region name and class).
    """
    if min_per_class < 4:
        raise ValueError("min_per_class must be at least 4 (two samples per half)")
    names = list(regions)
    n = len(names)
    matrix = np.full((n, n), np.nan)
    shared = np.zeros((n, n), dtype=np.int64)
    per_class: dict[tuple[str, str], dict[int, float]] = {}
    within_pc: dict[str, dict[int, float]] = {name: {} for name in names}
    bandwidth: dict[str, dict[int, float]] = {name: {} for name in names}
    not_comparable: dict[tuple[str, str], str] = {}
    class_names: dict[int, str] = {}
    for r in regions.values():
        for code, info in r.classes.items():
            class_names.setdefault(int(code), str(info.get("name", code)))

    groups, unusable = _groups(regions, normaliser)
    group_of = {name: gi for gi, g in enumerate(groups) for name in g}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            why = unusable.get(a) or unusable.get(b)
            if why is None and group_of[a] != group_of[b]:
                why = incompatibility(regions[a].preparation, regions[b].preparation)
            if why is not None:
                not_comparable[(a, b)] = why

    for group in groups:
        samples = {
            name: {
                c: x
                for c, x in _class_samples(
                    regions[name], name, normaliser, max_per_class, seed
                ).items()
                if len(x) >= min_per_class
            }
            for name in group
        }
        codes = sorted({c for s in samples.values() for c in s})
        for code in codes:
            holders = sorted(name for name in group if code in samples[name])
            pool = np.concatenate([samples[name][code] for name in holders])
            if len(pool) > MAX_POOL:
                pool = pool[
                    _rng(seed, "|".join(holders), code, 2).choice(len(pool), MAX_POOL, False)
                ]
            sigma = median_bandwidth(pool)
            for name in holders:
                bandwidth[name][code] = sigma
                x = samples[name][code]
                perm = _rng(seed, name, code, 1).permutation(len(x))
                half = len(x) // 2
                within_pc[name][code] = mmd2_unbiased(x[perm[:half]], x[perm[half:]], sigma)
            for hi, a in enumerate(holders):
                for b in holders[hi + 1 :]:
                    key = (a, b) if names.index(a) < names.index(b) else (b, a)
                    per_class.setdefault(key, {})[code] = mmd2_unbiased(
                        samples[key[0]][code], samples[key[1]][code], sigma
                    )

    for i, a in enumerate(names):
        w = list(within_pc[a].values())
        shared[i, i] = len(w)
        matrix[i, i] = float(np.mean(w)) if w else np.nan
        for j in range(i + 1, n):
            b = names[j]
            if (a, b) in not_comparable:
                continue
            d = per_class.setdefault((a, b), {})
            per_class[(a, b)] = dict(sorted(d.items()))
            shared[i, j] = shared[j, i] = len(d)
            if d:
                matrix[i, j] = matrix[j, i] = float(np.mean(list(d.values())))
    within = {name: float(matrix[i, i]) for i, name in enumerate(names)}
    return TaskDistances(
        regions=names,
        matrix=matrix,
        shared=shared,
        per_class=per_class,
        within=within,
        within_per_class={k: dict(sorted(v.items())) for k, v in within_pc.items()},
        not_comparable=not_comparable,
        bandwidth={k: dict(sorted(v.items())) for k, v in bandwidth.items()},
        class_names=dict(sorted(class_names.items())),
    )


def _mean(values: Sequence[float]) -> float:
    v = [x for x in values if math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def task_variability_summary(distances: TaskDistances, sources: list[str], target: str) -> str:
    """Plain-language sentences on how far ``target`` lies from ``sources`` compared with how
    far the sources lie from each other, read against the within-region reference.

    Thresholds: "farther" when the target's mean distance to the sources is at least
    :data:`FARTHER_RATIO` times the mean source-to-source distance, "closer" below its
    inverse; a distance under :data:`NOISE_FACTOR` × the within-region reference (or under
    :data:`NOISE_FLOOR`) is "indistinguishable from sampling noise".
    """
    sources = [s for s in sources if s != target]
    d = distances
    for name in [*sources, target]:
        if name not in d.regions:
            raise KeyError(f"{name} is not among the compared regions ({', '.join(d.regions)})")
    out = []
    blocked = [s for s in sources if d.reason(target, s)]
    if blocked:
        out.append(
            "The target {} cannot be compared with {}: {}.".format(
                target, ", ".join(blocked), "; ".join(d.reason(target, s) for s in blocked)
            )
        )
    to_target = {s: d.between(target, s) for s in sources if s not in blocked}
    measured = {s: v for s, v in to_target.items() if math.isfinite(v)}
    for s in to_target:
        if s not in measured:
            out.append(f"The target {target} shares no class with {s} (too few samples).")
    pairs = [(a, b, d.between(a, b)) for i, a in enumerate(sources) for b in sources[i + 1 :]]
    between_sources = _mean([v for _, _, v in pairs])
    within = _mean([d.within[r] for r in [*sources, target]])
    noise = max(NOISE_FACTOR * within if math.isfinite(within) else 0.0, NOISE_FLOOR)
    ref = (
        f"within-region reference {within:.3f} (two random halves of one class), "
        f"noise level {noise:.3f}"
        if math.isfinite(within)
        else "no class is large enough for a within-region reference"
    )
    if not measured:
        out.append(f"The distance of the target {target} from the sources cannot be measured.")
        return " ".join(out)
    t = _mean(list(measured.values()))
    n_shared = _mean([float(d.n_shared(target, s)) for s in measured])
    near = min(measured, key=measured.get)
    detail = (
        f"nearest source {near} at {measured[near]:.3f}, over {n_shared:.1f} shared classes "
        f"on average; {ref}; distances are unbiased squared MMDs, 0 = same distribution"
    )
    if not math.isfinite(between_sources):
        why = "there is one source" if len(sources) < 2 else "the sources share no class"
        verdict = (
            "indistinguishable from sampling noise: expect source knowledge to transfer well."
            if t < noise
            else f"{t / noise:.1f} times the noise level ({noise:.3f}): the target differs "
            "from the sources beyond sampling noise."
        )
        out.append(
            f"The target {target} is at mean distance {t:.3f} from the sources ({detail}); "
            f"source-to-source variability cannot be measured because {why}. "
            f"The distance is {verdict}"
        )
        return " ".join(out)
    if t < noise:
        verdict = (
            "The target is indistinguishable from the sources within sampling noise: "
            "expect meta-learned knowledge to transfer well."
        )
    elif t >= FARTHER_RATIO * between_sources and t - between_sources > noise / 2:
        verdict = (
            "The target is farther from the sources than the sources are from each other: "
            "it lies outside the task variability seen in meta-training, so expect "
            "meta-learned knowledge to transfer less well."
        )
    elif t <= between_sources / FARTHER_RATIO:
        verdict = (
            "The target is closer to the sources than the sources are to each other: it lies "
            "within the task variability seen in meta-training."
        )
    else:
        verdict = (
            "The target is about as far from the sources as the sources are from each other: "
            "it lies at the edge of the task variability seen in meta-training."
        )
    if between_sources < noise:
        verdict += (
            f" The sources themselves differ by no more than sampling noise "
            f"({between_sources:.3f}), so meta-training saw little task variability."
        )
    out.append(
        f"The target {target} is at mean distance {t:.3f} from the sources ({detail}); "
        f"the sources are at {between_sources:.3f} from each other. {verdict}"
    )
    return " ".join(out)
