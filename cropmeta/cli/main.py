"""``cropmeta`` command line: a thin skin over the Python API, one command per pipeline stage.

The commands live with their stage (``ingest``, ``learn``, ``mapping``, ``evaluate``) and are
registered here in the order of the workflow; ``demo`` runs them all on the synthetic world."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cropmeta.cli.evaluate import evaluate
from cropmeta.cli.ingest import preprocess, synth, taxonomy_
from cropmeta.cli.learn import adapt, learners_, meta_train
from cropmeta.cli.mapping import map_, preview, suggest_labels
from cropmeta.cli.options import Overwrite, Seed, count, with_meta_options, with_threads
from cropmeta.cli.progress import OneLineErrors, one_line_errors, setup_logging

app = typer.Typer(
    cls=OneLineErrors,
    help="Few-shot crop-type mapping: preprocess → meta-train → adapt → map.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main() -> None:
    setup_logging()


DemoScale = Enum("DemoScale", {k: k for k in ("demo", "tiny")}, type=str)


@one_line_errors
def demo(
    out: Annotated[
        Path, typer.Option(help="Folder for the world, datasets, models and map.")
    ] = Path("demo-out"),
    seed: Seed = 0,
    scale: Annotated[DemoScale, typer.Option(help="demo or tiny.")] = "demo",
    iterations: Annotated[int, count("Meta-training iterations.")] = 300,
    shots: Annotated[int, count("Labelled fields per class in the target.", hi=1000)] = 5,
    overwrite: Overwrite = False,
) -> None:
    """The whole chain on the synthetic world: synth → preprocess → meta-train → adapt → map."""
    from cropmeta.demo import run_demo

    scale = DemoScale(scale).value
    run_demo(out, seed=seed, scale=scale, iterations=iterations, shots=shots, overwrite=overwrite)


app.command()(with_threads(synth))
app.command()(with_threads(preprocess))
app.command("taxonomy")(taxonomy_)  # a listing: no work to thread
app.command()(with_threads(with_meta_options(older_names=True)(meta_train)))
app.command()(with_threads(adapt))
app.command("learners")(learners_)  # a listing: no work to thread
app.command("suggest-labels")(with_threads(suggest_labels))
app.command("map")(with_threads(map_))
app.command()(with_threads(with_meta_options()(evaluate)))
app.command()(with_threads(demo))
app.command()(with_threads(preview))
