"""Simulated regions: task augmentation for meta-training from few source regions.

Besides *which* crops they grow, regions differ in *when* and *how bright*: phenology runs
weeks earlier or later with latitude, altitude and climate (half a year across the equator),
and soils, sensors and atmospheric correction move the level and contrast of a band. With one
or two source regions every meta-training task shares the sources' calendar, so a learner can
meet the tasks by memorising that calendar instead of learning to adapt. Drawing, per task, one
phenology shift and one gain and offset per band, applied alike to its support and query
series, turns each task into one from a new simulated region; the inner loop (or the
prototypes) must then read the timing from the support set.

This is task augmentation in the sense of Ni et al. (2021, "Data augmentation for
meta-learning", ICML) and Yao et al. (2022, "Meta-learning with fewer tasks through task
interpolation", ICLR), who find that making new tasks helps learners meta-trained on few of
them; the shifts are the crop-calendar differences of
``shared/design/crop-phenology.md``. Off by default; validation tasks are never augmented.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from cropmeta.ingest.prepare import TemporalGrid


class TaskAugmentation(BaseModel):
    """Per-task random region effects; every setting 0 leaves the tasks as drawn."""

    shift_days: int = Field(
        0,
        ge=0,
        le=183,
        description="largest phenology shift: each task's series move by one draw in "
        "[-shift_days, +shift_days], rounded to grid steps (cyclically when the grid spans a "
        "year, else holding the first / last value)",
    )
    gain: float = Field(
        0.0, ge=0, lt=1, description="each band of a task scaled by 1 + a draw in [-gain, +gain]"
    )
    offset: float = Field(
        0.0,
        ge=0,
        description="each band of a task moved by a draw in [-offset, +offset] (units of the "
        "normalised band: source standard deviations)",
    )

    @property
    def active(self) -> bool:
        return bool(self.shift_days or self.gain or self.offset)


class RegionEffects:
    """Applies :class:`TaskAugmentation` draws to the tasks of one temporal grid."""

    def __init__(self, cfg: TaskAugmentation, grid: TemporalGrid) -> None:
        self.cfg, self.step, self.steps = cfg, grid.step, len(grid)
        self.cyclic = grid.length + grid.step >= 365

    def time_index(self, shift: int) -> np.ndarray:
        """Source step of each output step when the phenology moves ``shift`` steps later."""
        index = np.arange(self.steps) - shift
        return index % self.steps if self.cyclic else np.clip(index, 0, self.steps - 1)

    def __call__(self, rng: np.random.Generator, *series: np.ndarray) -> tuple[np.ndarray, ...]:
        """One draw of region effects, applied alike to every (sample, step, band) array.
        Inactive settings draw nothing, so the tasks (and all later draws) stay as without."""
        cfg = self.cfg
        if not cfg.active:
            return series
        bands = series[0].shape[-1]
        shift = round(rng.uniform(-cfg.shift_days, cfg.shift_days) / self.step)
        gain = 1 + rng.uniform(-cfg.gain, cfg.gain, bands)
        offset = rng.uniform(-cfg.offset, cfg.offset, bands)
        index = self.time_index(shift)
        return tuple((x[:, index] * gain + offset).astype(x.dtype) for x in series)
