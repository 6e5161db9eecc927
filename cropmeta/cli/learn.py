"""Learning commands: meta-train on source regions, adapt to a target region, list learners."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cropmeta.adapt.names import BEST
from cropmeta.cli.options import (
    Algorithm,
    ConfigFile,
    ForestTreesOpt,
    Method,
    Overwrite,
    Seed,
    Settings,
    Transduction,
    count,
    learner_configs,
    real,
    region_help,
)
from cropmeta.cli.progress import one_line_errors
from cropmeta.models.forest import FOREST_TREES
from cropmeta.progress import console, progress_bar


@one_line_errors
def meta_train(
    regions: Annotated[
        list[Path],
        typer.Option("--region", help=region_help("A source region (repeat for each)")),
    ],
    out: Annotated[Path, typer.Option(help="Model folder to write.")],
    algorithm: Annotated[Algorithm, typer.Option(help="Meta-learner.")] = "maml",
    device: Annotated[
        str, typer.Option(help="cpu, cuda, cuda:N, or auto (cuda when available).")
    ] = "cpu",
    checkpoint_every: Annotated[
        int, count("Checkpoint every N iterations and at the end (0: never).", lo=0)
    ] = 50,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (default: OUT.checkpoints).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue from the checkpoint (same data, settings and seed), if there is one."
        ),
    ] = False,
    settings: Settings = None,
    overwrite: Overwrite = False,
    seed: Seed = 0,
    config: ConfigFile = None,
    meta: dict | None = None,
) -> None:
    """Meta-train an encoder over n-way k-shot tasks drawn across source regions.

    Several processes share each meta-batch when launched with
    `torchrun --nproc_per_node N -m cropmeta meta-train ...`; only rank 0 writes.
    """
    from cropmeta.learners.meta_train import MetaTrainConfig, RunOptions, meta_train

    paths, name = list(regions), Algorithm(algorithm).value
    cfg = MetaTrainConfig(algorithm=name, learner=learner_configs([name], settings)[name], **meta)
    run = RunOptions(
        device=device,
        checkpoint_every=checkpoint_every or None,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    with progress_bar(f"meta-train {name}") as bar:
        meta_train(paths, out, cfg, seed=seed, progress=bar, run=run, overwrite=overwrite)
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: one message, from the writer
        typer.echo(f"model written: {out}")


@one_line_errors
def adapt(
    model: Annotated[
        list[Path],
        typer.Option(
            help="Meta-trained model folder; repeated, the models adapt on the same fields and "
            "are saved as one ensemble (the mean of their class probabilities)."
        ),
    ],
    region: Annotated[Path, typer.Option(help=region_help("The target region"))],
    out: Annotated[Path, typer.Option(help="Adapted model folder to write.")],
    shots: Annotated[
        int | None,
        count(
            "Labelled samples per class; the rest evaluate. Without it: adapt on all labels.",
            hi=10_000,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="An adaptation setting KEY=VALUE (repeatable): adapt_steps, adapt_lr, "
            "fine_tune_steps, fine_tune_lr (as the learner has them).",
        ),
    ] = None,
    cv: Annotated[
        int | None,
        count(
            "Also cross-validate the learner and every baseline on the labelled fields in this "
            "many stratified folds: which method suits the region, from its labels alone.",
            lo=2,
            hi=100,
        ),
    ] = None,
    method: Annotated[
        Method | None,
        typer.Option(
            help="The model to save: 'best' (default: the method cross-validation on the "
            "labelled fields ranks first, in --cv folds or as many as they fill, at most 5, "
            "weighted to the region's class shares when its unlabelled samples are at hand), "
            "the meta-learner, or a baseline fitted on the same fields.",
        ),
    ] = None,
    shot_weight: Annotated[
        float,
        real(
            "Pooled baselines (source samples + the labelled fields): how many source samples "
            "one labelled field weighs.",
            1e-3,
            1e3,
        ),
    ] = 1.0,
    forest_trees: ForestTreesOpt = FOREST_TREES,
    transductive: Annotated[
        Transduction | None,
        typer.Option(
            help="Correct the saved method with the region's unlabelled samples: label_shift "
            "(the region's class priors by EM), bbse (by cross-validation), self_training, "
            "timematch (its crop calendar) or soft_kmeans (protonet's prototypes).",
        ),
    ] = None,
    unlabelled: Annotated[
        Path | None,
        typer.Option(
            help="Region dataset (.zarr) of the region's unlabelled samples (labels ignored); "
            "default with --shots: the region's samples outside the labelled fields.",
        ),
    ] = None,
    overwrite: Overwrite = False,
    seed: Seed = 0,
) -> None:
    """Adapt to a new region from K labelled fields per class; compare with baselines."""
    from cropmeta.adapt.adapt import adapt_region, check_method, open_meta_model
    from cropmeta.evaluate.report import metrics_table
    from cropmeta.learners.registry import adaptation_settings

    method = None if method is None else Method(method).value
    if len(model) > 1:
        from cropmeta.adapt.ensemble import adapt_ensemble

        given_options = (settings, "--set"), (cv, "--cv"), (method, "--method")
        for given, hint in (*given_options, (transductive, "--transductive")):
            if given:
                raise typer.BadParameter("not with an ensemble (several --model)", param_hint=hint)
        result = adapt_ensemble(model, region, out, shots=shots, seed=seed, overwrite=overwrite)
    else:
        meta = open_meta_model(model[0])  # read and checked once, then adapted
        learner = meta.algorithm
        try:
            chosen = adaptation_settings(learner, settings or [])
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--set") from None
        try:
            method = check_method(method or BEST, learner)
            if transductive is not None:
                method = check_method(f"{method}+{Transduction(transductive).value}", learner)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--method") from None
        result = adapt_region(
            meta, region, out, shots=shots, seed=seed, settings=chosen, cv_folds=cv,
            method=method, overwrite=overwrite, shot_weight=shot_weight, unlabelled=unlabelled,
            forest_trees=forest_trees,
        )  # fmt: skip
    if as_json:
        typer.echo(result.to_json())
    else:
        if result.metrics:
            console.print(metrics_table(result))
        if result.cv_metrics:
            console.print(metrics_table(result, cross_validated=True))
        typer.echo(f"adapted model ({result.saved}) written: {out}")


def learners_() -> None:
    """List the meta-learners' settings that `--set` changes, with their defaults."""
    from rich.console import Console
    from rich.table import Table

    from cropmeta.learners.registry import describe_settings

    table = Table("setting", "default (learners)", "what it does")
    for row in describe_settings():
        table.add_row(*row)
    Console().print(table)  # a listing: standard output
