"""The evaluation command: the few-shot protocol over a catalog's regions, as a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cropmeta.cli.options import (
    Algorithm,
    AugmentBaselines,
    Encoder,
    Gain,
    Init,
    InitOption,
    Offset,
    Overwrite,
    Seed,
    Settings,
    ShiftDays,
    UserTaxonomyOpt,
    ValRegions,
    augment_options,
    count,
    learner_options,
)
from cropmeta.cli.progress import one_line_errors
from cropmeta.learners.names import ALGORITHMS
from cropmeta.progress import progress_bar


@one_line_errors
def evaluate(
    catalog: Annotated[Path, typer.Option(help="Catalog YAML naming the regions and the split.")],
    out: Annotated[
        Path,
        typer.Option(help="Folder for report.md, report.html, results.json, figures/, models/."),
    ],
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
        list[str] | None, typer.Option(help="Catalog regions to use (repeatable; default: all).")
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(help="Held-out regions (repeatable; default: the catalog's targets)."),
    ] = None,
    loro: Annotated[
        bool, typer.Option(help="Leave-one-region-out over the regions instead of the split.")
    ] = False,
    encoder: Annotated[Encoder, typer.Option(help="Temporal encoder.")] = "tempcnn",
    iterations: Annotated[int, count("Meta-training iterations.")] = 300,
    task_ways: Annotated[int, count("Meta-training classes per task.", lo=2, hi=100)] = 5,
    task_shots: Annotated[int, count("Meta-training support per class.", hi=1000)] = 5,
    task_queries: Annotated[int, count("Meta-training queries per class.", hi=1000)] = 10,
    init: InitOption = "random",
    task_shift_days: ShiftDays = 0,
    task_gain: Gain = 0.0,
    task_offset: Offset = 0.0,
    augment_baselines: AugmentBaselines = False,
    val_region: ValRegions = None,
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
            "query's series, never its labels): +label_shift, +self_training, +timematch, "
            "+soft_kmeans.",
        ),
    ] = True,
    taxonomy: UserTaxonomyOpt = None,
    overwrite: Overwrite = False,
    seed: Seed = 0,
) -> None:
    """Which learner, with how many labels, how sure: few-shot evaluation on held-out regions.

    Meta-trains every learner on the sources of each fold, adapts it and every baseline to the
    held-out region on the same K-shot draws, and writes a Markdown report with plots.
    """
    from cropmeta.evaluate.evaluation import evaluate_catalog
    from cropmeta.evaluate.protocol import EvaluationConfig
    from cropmeta.learners.meta_train import MetaTrainConfig
    from cropmeta.models.encoders import EncoderConfig

    defaults = EvaluationConfig()
    learners = [a.value for a in learner] if learner else defaults.learners
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
        automatic=automatic,
        taxonomy=taxonomy,
        meta=MetaTrainConfig(
            learner=learner_options(learners, settings),
            encoder=EncoderConfig(name=encoder.value),
            iterations=iterations,
            n_way=task_ways,
            k_shot=task_shots,
            q_query=task_queries,
            init=Init(init).value,
            **augment_options(task_shift_days, task_gain, task_offset, augment_baselines),
            val_regions=val_region or [],
        ),
    )
    with progress_bar("evaluate") as bar:
        report = evaluate_catalog(
            catalog, out, cfg, seed=seed, progress=lambda _, d, t: bar(d, t), overwrite=overwrite
        )
    typer.echo(f"report written: {report}")
