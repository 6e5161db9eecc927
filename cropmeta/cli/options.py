"""Option types and helpers the commands share."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cropmeta.learners.names import ALGORITHMS

Seed = Annotated[int, typer.Option(help="Random seed: same inputs + seed → same outputs.")]
StatisticChoice = Enum("StatisticChoice", {"mean": "mean", "median": "median"}, type=str)
SamplingChoice = Enum("SamplingChoice", {"field": "field", "pixels": "pixels"}, type=str)
Algorithm = Enum("Algorithm", {k: k for k in ALGORITHMS}, type=str)  # every registered learner
Encoder = Enum("Encoder", {k: k for k in ("tempcnn", "lstm", "transformer", "ltae")}, type=str)
TableFormat = Enum("TableFormat", {"long": "long", "wide": "wide"}, type=str)
Layout = Enum(
    "Layout", {k: k for k in ("per-date", "band-date-pattern", "stac", "datacube")}, type=str
)
LayoutOpt = Annotated[Layout, typer.Option(help="How --tiles is organised.")]
PatternOpt = Annotated[
    str | None, typer.Option(help="band-date-pattern: regex with groups 'band' and 'date'.")
]
ScaleOpt = Annotated[float | None, typer.Option(help="Scale factor (overrides the files').")]
OffsetOpt = Annotated[float | None, typer.Option(help="Offset (overrides the files').")]
QualityOpt = Annotated[
    str | None, typer.Option(help="Quality/classification band [SCL when present].")
]
ValidRangeOpt = Annotated[
    tuple[float, float] | None,
    typer.Option(help="Mask pixels with a scaled value outside MIN MAX (valid-range rule)."),
]


def raster_spec(tiles: Path, layout, pattern, scale, offset, quality=None, valid_range=None):
    """The raster options of `preprocess` and `map` as the catalog's raster description."""
    from cropmeta.catalog import RasterSpec

    return RasterSpec(
        path=str(tiles),
        layout=Layout(layout).value,
        pattern=pattern,
        scale=scale,
        offset=offset,
        quality_band=quality,
        valid_range=valid_range,
    )


Schedule = Enum("Schedule", {k: k for k in ("cosine", "constant", "step")}, type=str)
Init = Enum("Init", {k: k for k in ("random", "pretrained")}, type=str)
InitOption = Annotated[
    Init,
    typer.Option(
        help="Starting encoder: random, or pre-trained on the sources with cross-entropy "
        "(the transfer baselines' classifier; Meta-Baseline) — with head_init=classes, its "
        "head rows too."
    ),
]
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A learner setting KEY=VALUE (repeatable), e.g. head_init=prototypes, "
        "adapt_steps=50; `cropmeta learners` lists them.",
    ),
]


# simulated regions in meta-training (cropmeta.tasks.augment.TaskAugmentation)
ShiftDays = Annotated[
    int,
    typer.Option(
        min=0,
        max=183,
        help="Simulated regions: shift each meta-training task's phenology by up to ± this "
        "many days (0: off).",
    ),
]
Gain = Annotated[
    float,
    typer.Option(
        min=0, max=0.99, help="Simulated regions: scale each task's bands by 1 ± up to this."
    ),
]
Offset = Annotated[
    float,
    typer.Option(
        min=0,
        help="Simulated regions: move each task's bands by up to ± this (source std. devs).",
    ),
]


AugmentBaselines = Annotated[
    bool,
    typer.Option(
        help="Pre-train the transfer baselines' source classifier on simulated regions too "
        "(each sample its own draw)."
    ),
]
ValRegions = Annotated[
    list[str] | None,
    typer.Option(
        "--val-region",
        help="A source region held out whole for the meta-validation tasks (repeatable; "
        "default: a share of every source's samples).",
    ),
]


def augment_options(shift_days: int, gain: float, offset: float, baselines: bool) -> dict:
    """MetaTrainConfig's simulated-region settings from the command line's options."""
    if baselines and not (shift_days or gain or offset):
        need = "needs --task-shift-days, --task-gain or --task-offset"
        raise typer.BadParameter(need, param_hint="--augment-baselines")
    augment = {"shift_days": shift_days, "gain": gain, "offset": offset}
    return {"augment": augment, "augment_baselines": baselines}


def learner_options(algorithms: list[str], pairs: list[str] | None) -> dict:
    """The ``--set KEY=VALUE`` learner settings, checked against every learner in ``algorithms``."""
    from cropmeta.learners.registry import learner_settings

    try:
        return learner_settings(algorithms, pairs or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None
