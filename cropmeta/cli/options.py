"""Option types and helpers the commands share.

Every numeric option declares its range (``--help`` shows it) and a float option refuses NaN
and infinities, so a bad number is refused by the option parser with one line before any
work starts (tests/cli/test_cli_bounds.py checks every numeric option of every command).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, get_args

import typer

from cropmeta.adapt.names import BEST, SUGGEST_METHODS, TRANSDUCTIONS
from cropmeta.baselines.names import BASELINES
from cropmeta.learners.names import ALGORITHMS
from cropmeta.mapping.options import Uncertainty as UncertaintyKind
from cropmeta.models.names import EncoderName

SEED_MAX = 2**32 - 1
MANY = 1_000_000  # the upper bound of counts that have no natural one (iterations, budgets)


def finite(value):
    """Option callback: refuse NaN and infinities, which a float range lets through."""
    for v in value if isinstance(value, list | tuple) else [value]:
        if isinstance(v, float) and not math.isfinite(v):
            raise typer.BadParameter(f"{v} is not a finite number")
    return value


def count(help: str, lo: int = 1, hi: int = MANY, **kwargs):
    """An integer option from ``lo`` to ``hi``."""
    return typer.Option(min=lo, max=hi, help=help, **kwargs)


def real(help: str, lo: float, hi: float, **kwargs):
    """A finite float option from ``lo`` to ``hi``."""
    return typer.Option(min=lo, max=hi, callback=finite, help=help, **kwargs)


Seed = Annotated[int, count("Random seed: same inputs + seed → same outputs.", lo=0, hi=SEED_MAX)]
Threads = Annotated[
    int | None,
    count(
        "CPU threads for torch (default: OMP_NUM_THREADS, else 1: never oversubscribes a busy "
        "machine; results depend on the count, which is recorded in the outputs).",
        hi=1024,
    ),
]
UserTaxonomyOpt = Annotated[
    Path | None,
    typer.Option(
        "--taxonomy",
        help="Your own taxonomy YAML (classes with their local names), merged over the packaged "
        "one: labels in your words without touching the package (docs/own-labels.md; list the "
        "result with `cropmeta taxonomy`).",
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        help="Replace an existing output that cropmeta did not write, or wrote as another kind "
        "of output (never one of the command's inputs).",
    ),
]
StatisticChoice = Enum("StatisticChoice", {"mean": "mean", "median": "median"}, type=str)
SamplingChoice = Enum("SamplingChoice", {"field": "field", "pixels": "pixels"}, type=str)
Algorithm = Enum("Algorithm", {k: k for k in ALGORITHMS}, type=str)  # every registered learner
#: What `adapt --method` saves: a learner (the model's own), a baseline, or cross-validation's pick.
Method = Enum("Method", {k: k for k in (*ALGORITHMS, *BASELINES, BEST)}, type=str)
#: What `adapt --transductive` applies to the saved method with the region's unlabelled samples.
Transduction = Enum("Transduction", {k: k for k in TRANSDUCTIONS}, type=str)
SuggestMethod = Enum("SuggestMethod", {k: k for k in SUGGEST_METHODS}, type=str)
WorldScale = Enum("WorldScale", {k: k for k in ("demo", "tiny", "bench")}, type=str)
#: What `synth --as` writes beside each region's per-date tiles (cropmeta.synth.providers).
WorldLayout = Enum(
    "WorldLayout", {k: k for k in ("per-date", "earth-search", "planetary-computer")}, type=str
)
Uncertainty = Enum("Uncertainty", {k: k for k in get_args(UncertaintyKind)}, type=str)
Encoder = Enum("Encoder", {k: k for k in get_args(EncoderName)}, type=str)
TableFormat = Enum("TableFormat", {"long": "long", "wide": "wide"}, type=str)
Layout = Enum(
    "Layout", {k: k for k in ("per-date", "band-date-pattern", "stac", "datacube")}, type=str
)
LayoutOpt = Annotated[Layout, typer.Option(help="How --tiles is organised.")]
PatternOpt = Annotated[
    str | None, typer.Option(help="band-date-pattern: regex with groups 'band' and 'date'.")
]
ScaleOpt = Annotated[float | None, real("Scale factor (overrides the files').", lo=-1e9, hi=1e9)]
OffsetOpt = Annotated[float | None, real("Offset (overrides the files').", lo=-1e9, hi=1e9)]
QualityOpt = Annotated[
    str | None, typer.Option(help="Quality/classification band (default: SCL when present).")
]
ValidRangeOpt = Annotated[
    tuple[float, float] | None,
    real("Mask pixels with a scaled value outside MIN MAX (valid-range rule).", -1e9, 1e9),
]


ForestTreesOpt = Annotated[
    int,
    count(
        "Trees of every random forest baseline (shots only, pooled, Presto; fewer: faster, "
        "coarser probabilities).",
        lo=1,
        hi=10_000,
    ),
]
CrsOpt = Annotated[
    str | None,
    typer.Option(help="--layout stac: the CRS to read on, e.g. EPSG:32633 (default: most items')."),
]
ResolutionOpt = Annotated[
    float | None,
    real("--layout stac: pixel size in CRS units (default: the finest band's).", 1e-9, 1e9),
]


def raster_spec(
    tiles: Path | str,
    layout,
    pattern,
    scale,
    offset,
    quality=None,
    valid_range=None,
    crs: str | None = None,
    resolution: float | None = None,
):
    """The raster options of `preprocess` and `map` as the catalog's raster description.

    ``tiles`` may be a URL (STAC items over HTTP): a path option has folded its ``//`` into
    one, which is restored here.
    """
    from cropmeta.catalog import RasterSpec

    if valid_range is not None and not valid_range[0] < valid_range[1]:
        raise typer.BadParameter("MIN must be below MAX", param_hint="--valid-range")
    if (crs or resolution) and Layout(layout).value != "stac":
        raise typer.BadParameter("only with --layout stac", param_hint="--crs/--resolution")
    return RasterSpec(
        path=re.sub(r"^(https?|s3|gs|az):/(?!/)", r"\1://", str(tiles)),
        crs=crs,
        resolution=resolution,
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
    count(
        "Simulated regions: shift each meta-training task's phenology by up to ± this many "
        "days (0: off).",
        lo=0,
        hi=183,
    ),
]
Gain = Annotated[
    float, real("Simulated regions: scale each task's bands by 1 ± up to this.", 0, 0.99)
]
Offset = Annotated[
    float,
    real("Simulated regions: move each task's bands by up to ± this (source std. devs).", 0, 10),
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


#: How --region gives a region, the same in every command: by its region dataset, or by its
#: name where the command reads a catalog (or, in ``synth``, the world it writes)
REGION_DATASET = "its region dataset (.zarr, from `cropmeta preprocess`)"


def region_help(role: str, named_in: str | None = None, dataset: bool = True) -> str:
    """``--region``'s help: ``role`` (what the region is to the command), then how it is given:
    by name in ``named_in`` (a catalog, the world) and/or by :data:`REGION_DATASET`."""
    forms = [f"its name in {named_in}"] if named_in else []
    if dataset:
        forms.append(f"without one, {REGION_DATASET}" if named_in else REGION_DATASET)
    return f"{role}: {', or '.join(forms)}."


def learner_configs(algorithms: list[str], pairs: list[str] | None) -> dict:
    """Each learner of ``algorithms`` with its typed settings
    (:data:`cropmeta.learners.config.LearnerConfig`) from ``--set KEY=VALUE``: every key must
    be a setting of one of them, and applies to each learner that has it."""
    from cropmeta.learners.config import learner_config
    from cropmeta.learners.registry import learner_settings

    try:
        given = learner_settings(algorithms, pairs or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set") from None
    return {name: learner_config(name, given) for name in algorithms}


def _config_defaults(ctx: typer.Context, value: Path | None) -> Path | None:
    """Read ``--config FILE`` (YAML: option names as in --help, with - or _) into the
    command's defaults, so options given on the command line still win (click's
    ``default_map``). An unknown name, or a file that is not a YAML mapping, is refused."""
    if value is None:
        return None
    from cropmeta.errors import InputError, read_yaml

    try:
        data = read_yaml(Path(value))
    except InputError as exc:
        raise typer.BadParameter(f"{exc.path}: {exc.problem}") from None
    names = {
        flag.lstrip("-").replace("-", "_"): p.name
        for p in ctx.command.params
        if p.name != "config"
        for flag in (p.name, *getattr(p, "opts", ()))
    }
    defaults = {}
    for key, setting in data.items():
        name = names.get(str(key).lstrip("-").replace("-", "_"))
        if name is None:
            raise typer.BadParameter(f"{value}: unknown option {key!r} (see --help)")
        defaults[name] = setting
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A YAML file of this command's options (names as in --help, e.g. 'iterations: "
        "100' or 'task_ways: 4'); options on the command line win. The resolved settings are "
        "recorded in the outputs.",
        callback=_config_defaults,
        is_eager=True,
    ),
]


def _task_size(what: str, help: str, hi: int, lo: int, older: bool):
    """``--task-WHAT`` (and, with ``older``, meta-train's former name ``--WHAT``)."""
    names = (f"--task-{what}", f"--{what}") if older else (f"--task-{what}",)
    return typer.Option(*names, min=lo, max=hi, help=help)


def _meta_parameters(older: bool) -> dict[str, tuple[object, object]]:
    """Meta-training's options (name → annotation, default), the same in every command."""
    return {
        "encoder": (Annotated[Encoder, typer.Option(help="Temporal encoder.")], "tempcnn"),
        "iterations": (Annotated[int, count("Meta-training iterations.")], 300),
        "task_ways": (
            Annotated[int, _task_size("ways", "Classes per meta-training task.", 100, 2, older)],
            5,
        ),
        "task_shots": (
            Annotated[
                int, _task_size("shots", "Support samples per class of a task.", 1000, 1, older)
            ],
            5,
        ),
        "task_queries": (
            Annotated[
                int, _task_size("queries", "Query samples per class of a task.", 1000, 1, older)
            ],
            10,
        ),
        "meta_batch": (Annotated[int, count("Tasks per meta-update.", hi=1024)], 4),
        "schedule": (
            Annotated[Schedule, typer.Option(help="Meta learning-rate schedule.")],
            "cosine",
        ),
        "warmup": (
            Annotated[int, count("Iterations of linear learning-rate warm-up.", lo=0)],
            0,
        ),
        "val_every": (
            Annotated[int, count("Score the held-out validation tasks every N iterations.")],
            50,
        ),
        "patience": (
            Annotated[
                int | None, count("Stop after N validations without improvement (default: never).")
            ],
            None,
        ),
        "init": (InitOption, "random"),
        "task_shift_days": (ShiftDays, 0),
        "task_gain": (Gain, 0.0),
        "task_offset": (Offset, 0.0),
        "augment_baselines": (AugmentBaselines, False),
        "val_region": (ValRegions, None),
    }


def with_meta_options(older_names: bool = False) -> Callable[[Callable], Callable]:
    """Give a command meta-training's options, declared once (:func:`_meta_parameters`): it
    receives them as ``meta``, the :class:`~cropmeta.learners.config.MetaTrainConfig` fields
    they set (all but the algorithm and its settings). `meta-train` and `evaluate` share the
    flags; ``older_names`` also accepts meta-train's former ``--ways``, ``--shots`` and
    ``--queries``."""

    def decorate(command: Callable) -> Callable:
        parameters = _meta_parameters(older_names)
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "meta"]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for name, (a, d) in parameters.items()
        ]

        @functools.wraps(command)
        def run(*args, **kwargs):
            given = {name: kwargs.pop(name, default) for name, (_, default) in parameters.items()}
            return command(*args, meta=meta_fields(**given), **kwargs)

        run.__signature__ = signature.replace(parameters=[*own, *added])
        annotations = {k: v for k, v in command.__annotations__.items() if k != "meta"}
        run.__annotations__ = annotations | {n: a for n, (a, _) in parameters.items()}
        return run

    return decorate


def meta_fields(
    encoder: str,
    iterations: int,
    task_ways: int,
    task_shots: int,
    task_queries: int,
    meta_batch: int,
    schedule: str,
    warmup: int,
    val_every: int,
    patience: int | None,
    init: str,
    task_shift_days: int,
    task_gain: float,
    task_offset: float,
    augment_baselines: bool,
    val_region: list[str] | None,
) -> dict:
    """MetaTrainConfig's fields from meta-training's command-line options."""
    return {
        "encoder": {"name": Encoder(encoder).value},
        "iterations": iterations,
        "n_way": task_ways,
        "k_shot": task_shots,
        "q_query": task_queries,
        "meta_batch": meta_batch,
        "schedule": Schedule(schedule).value,
        "warmup": warmup,
        "val_every": val_every,
        "patience": patience,
        "init": Init(init).value,
        **augment_options(task_shift_days, task_gain, task_offset, augment_baselines),
        "val_regions": val_region or [],
    }


def with_threads(command: Callable) -> Callable:
    """``command`` with a ``--threads`` option (:data:`Threads`) that sets torch's threads
    (:func:`cropmeta.threads.use_threads`) before it runs: every command takes it, declared once."""
    signature = inspect.signature(command, eval_str=True)
    threads = inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=None)
    threads = threads.replace(annotation=Threads)

    @functools.wraps(command)
    def run(*args, threads: int | None = None, **kwargs):
        from cropmeta.threads import use_threads

        use_threads(threads)
        return command(*args, **kwargs)

    run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), threads])
    run.__annotations__ = {**command.__annotations__, "threads": Threads}
    return run
