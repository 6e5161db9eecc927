"""The evaluation command: the few-shot protocol over a catalog's regions, as a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cropmeta.cli.options import (
    Algorithm,
    ConfigFile,
    ForestTreesOpt,
    Overwrite,
    Seed,
    Settings,
    UserTaxonomyOpt,
    count,
    learner_configs,
    region_help,
)
from cropmeta.cli.progress import one_line_errors
from cropmeta.learners.names import ALGORITHMS
from cropmeta.models.forest import FOREST_TREES
from cropmeta.progress import progress_bar


@one_line_errors
def evaluate(
    out: Annotated[
        Path,
        typer.Option(help="Folder for report.md, report.html, results.json, figures/, models/."),
    ],
    catalog: Annotated[
        Path | None,
        typer.Option(help="Catalog YAML naming the regions and the split (or --region X.zarr)."),
    ] = None,
    learner: Annotated[
        list[Algorithm] | None,
        typer.Option(help="Meta-learner to compare (repeatable; default: maml, protonet)."),
    ] = None,
    shots: Annotated[
        list[int] | None,
        count("Labelled samples per class K (repeatable; default: 1 2 5 10 20).", hi=10_000),
    ] = None,
    seeds: Annotated[int, count("Support/query draws per K.", hi=1000)] = 5,
    region: Annotated[
        list[str] | None,
        typer.Option(help=region_help("A region to use (repeatable; default: all)", "--catalog")),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            help="A held-out region, by name (repeatable; default: the catalog's targets; "
            "with region datasets, give it or --loro)."
        ),
    ] = None,
    loro: Annotated[
        bool, typer.Option(help="Leave-one-region-out over the regions instead of the split.")
    ] = False,
    settings: Settings = None,
    cv: Annotated[
        int | None,
        count(
            "Also measure `adapt --cv N --method best` on the headline K's draws: the method "
            "that N-fold cross-validation on each support set ranks first.",
            lo=2,
            hi=100,
        ),
    ] = None,
    ensemble: Annotated[
        int | None,
        count(
            "Also score the ensemble of the N learners with the best meta-validation accuracy "
            "(the mean of their class probabilities; `adapt --model A --model B`).",
            lo=2,
            hi=len(ALGORITHMS),
        ),
    ] = None,
    automatic: Annotated[
        bool,
        typer.Option(
            help="Also score the automatic choice, what `cropmeta adapt` saves by default "
            "(--method best): every method cross-validated on each support set in min(5, K) "
            "folds, the first taken (K ≥ 2).",
        ),
    ] = True,
    transductive: Annotated[
        bool,
        typer.Option(
            help="Also score each method corrected with the target's unlabelled samples (the "
            "query's series, never its labels): +label_shift, +bbse, +self_training, "
            "+timematch, +soft_kmeans.",
        ),
    ] = True,
    taxonomy: UserTaxonomyOpt = None,
    forest_trees: ForestTreesOpt = FOREST_TREES,
    workers: Annotated[
        int | None,
        count(
            "Processes sharing the meta-trainings and draws, one torch thread each (default: "
            "the cores not already busy); the figures are those of 1 worker at 1 thread.",
            hi=1024,
        ),
    ] = None,
    overwrite: Overwrite = False,
    seed: Seed = 0,
    config: ConfigFile = None,
    meta: dict | None = None,
) -> None:
    """Which learner, with how many labels, how sure: few-shot evaluation on held-out regions.

    Meta-trains every learner on the sources of each fold, adapts it and every baseline to the
    held-out region on the same K-shot draws, and writes a Markdown report with plots.
    """
    from cropmeta.evaluate.evaluation import evaluate_catalog
    from cropmeta.evaluate.protocol import EvaluationConfig
    from cropmeta.learners.meta_train import MetaTrainConfig
    from cropmeta.threads import free_cores

    defaults = EvaluationConfig()
    learners = [a.value for a in learner] if learner else defaults.learners
    datasets = None
    if catalog is None:  # the user's region datasets
        if not region or len(region) < 2:
            raise typer.BadParameter(
                "give a catalog, or two or more region datasets (--region X.zarr)",
                param_hint="--catalog",
            )
        if not (target or loro):
            raise typer.BadParameter("with region datasets, name the held-out ones (or --loro)",
                                     param_hint="--target")  # fmt: skip
        datasets, region = region, None
    cfg = EvaluationConfig(
        learners=learners,
        shots=shots or defaults.shots,
        seeds=seeds,
        regions=region or None,
        targets=target or None,
        loro=loro,
        cv_folds=cv,
        ensemble=ensemble,
        transductive=transductive,
        forest_trees=forest_trees,
        automatic=automatic,
        taxonomy=taxonomy,
        meta=MetaTrainConfig(**meta),
        learner_settings=learner_configs(learners, settings),
    )
    with progress_bar("evaluate") as bar:
        report = evaluate_catalog(
            catalog,
            out,
            cfg,
            seed=seed,
            progress=lambda _, d, t: bar(d, t),
            overwrite=overwrite,
            workers=workers or free_cores(),
            datasets=datasets,
        )
    typer.echo(f"report written: {report}")
