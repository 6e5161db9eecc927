"""N-way k-shot episodes drawn from several regions.

A task picks a region (in proportion to its number of samples), ``n_way`` shared classes that
have enough samples there, then ``k_shot`` support and ``q_query`` disjoint query samples per class;
labels are renumbered 0..n-1 within the task. Shared codes come from the taxonomy, so "maize" is
the same class whichever region it is drawn from. A region may carry task information (its
location, :mod:`cropmeta.tasks.task_info`); tasks then carry it too, for task-informed learners.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

#: Region effects drawn per task and applied alike to its support and query series
#: (:class:`cropmeta.tasks.augment.RegionEffects`).
TaskTransform = Callable[..., tuple[np.ndarray, ...]]


@dataclass
class TaskBatch:
    """A meta-batch of tasks: support (x_s, y_s) and query (x_q, y_q), stacked over tasks."""

    x_s: torch.Tensor  # (task, n*k, step, band)
    y_s: torch.Tensor  # (task, n*k)
    x_q: torch.Tensor  # (task, n*q, step, band)
    y_q: torch.Tensor  # (task, n*q)
    info: torch.Tensor | None = None  # (task, info): the task's region information, if known
    codes: torch.Tensor | None = None  # (task, n): the taxonomy code of each task label, if known


@dataclass
class LabelledSet:
    """Model-ready series (sample, step, band) and shared class codes of one region."""

    name: str
    x: np.ndarray
    codes: np.ndarray
    info: np.ndarray | None = None  # task information (cropmeta.tasks.task_info), if known


class EpisodeSampler:
    """Draws n-way k-shot tasks across regions; deterministic for a given ``seed``.

    ``transform``, if given, is called as ``transform(rng, x_s, x_q)`` on every task drawn, with
    the sampler's generator, so augmented tasks stay reproducible and resumable.
    """

    def __init__(
        self,
        regions: list[LabelledSet],
        n_way: int,
        k_shot: int,
        q_query: int,
        seed: int,
        transform: TaskTransform | None = None,
    ) -> None:
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.transform = transform
        self.rng = np.random.default_rng(seed)
        self.pools: list[tuple[LabelledSet, dict[int, np.ndarray]]] = []
        for region in regions:
            by_class = {int(c): np.flatnonzero(region.codes == c) for c in np.unique(region.codes)}
            eligible = {c: i for c, i in by_class.items() if len(i) >= k_shot + q_query}
            if len(eligible) >= n_way:
                self.pools.append((region, eligible))
        if not self.pools:
            raise ValueError(
                f"no region has {n_way} classes with {k_shot + q_query} samples each "
                "(lower --ways, --shots or --queries)"
            )
        sizes = np.array([len(r.codes) for r, _ in self.pools], dtype=float)
        self.weights = sizes / sizes.sum()

    def sample_task(self) -> tuple[np.ndarray | None, ...]:
        """(x_s, y_s, x_q, y_q, info, codes) of one task; ``info`` is its region's, or None;
        ``codes`` are the taxonomy codes of its labels 0..n-1."""
        region, eligible = self.pools[self.rng.choice(len(self.pools), p=self.weights)]
        classes = self.rng.choice(sorted(eligible), size=self.n_way, replace=False)
        support, query = [], []
        for idx in (eligible[int(c)] for c in classes):
            picked = self.rng.choice(idx, size=self.k_shot + self.q_query, replace=False)
            support.append(picked[: self.k_shot])
            query.append(picked[self.k_shot :])
        s, q = np.concatenate(support), np.concatenate(query)
        y_s = np.repeat(np.arange(self.n_way), self.k_shot)
        y_q = np.repeat(np.arange(self.n_way), self.q_query)
        x_s, x_q = region.x[s], region.x[q]
        if self.transform is not None:
            x_s, x_q = self.transform(self.rng, x_s, x_q)
        return x_s, y_s, x_q, y_q, region.info, classes.astype(np.int64)

    def sample(self, n_tasks: int) -> TaskBatch:
        parts = [self.sample_task() for _ in range(n_tasks)]
        *arrays, infos, codes = zip(*parts, strict=True)
        x_s, y_s, x_q, y_q = (torch.from_numpy(np.stack(a)) for a in arrays)
        known = all(i is not None for i in infos)
        info = torch.from_numpy(np.stack(infos)).float() if known else None
        return TaskBatch(x_s, y_s, x_q, y_q, info, torch.from_numpy(np.stack(codes)))


def split_support_query(
    codes: np.ndarray, shots: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``shots`` support samples per class, the rest as query; classes too small are skipped.

    Returns support indices, query indices and the skipped class codes. Every method evaluated
    on a region gets these same indices, so learners and baselines see identical support sets.
    """
    support, query, skipped = [], [], []
    for c in np.unique(codes):
        idx = rng.permutation(np.flatnonzero(codes == c))
        if len(idx) <= shots:
            skipped.append(int(c))
            continue
        support.append(idx[:shots])
        query.append(idx[shots:])
    if not support:
        return np.array([], int), np.array([], int), skipped
    return np.sort(np.concatenate(support)), np.sort(np.concatenate(query)), skipped
