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


#: One example per command, shown at the end of its --help (the quickstart's, on the demo world).
EXAMPLES = {
    "synth": "cropmeta synth --out world --seed 0",
    "preprocess": "cropmeta preprocess --catalog world/catalog.yaml --region poltava "
    "--out poltava.zarr --non-crop-pixels 300",
    "taxonomy": "cropmeta taxonomy --taxonomy my-crops.yaml",
    "meta-train": "cropmeta meta-train --region brandenburg.zarr --region beauce.zarr "
    "--algorithm maml --out model",
    "adapt": "cropmeta adapt --model model --region poltava.zarr --shots 5 --out adapted",
    "learners": "cropmeta learners",
    "suggest-labels": "cropmeta suggest-labels --model model --fields world/poltava/fields.gpkg "
    "--tiles world/poltava/tiles --budget 30 --out to-label.gpkg",
    "map": "cropmeta map --model adapted --tiles world/poltava/tiles --out poltava.tif "
    "--uncertainty entropy",
    "evaluate": "cropmeta evaluate --catalog world/catalog.yaml --out evaluation "
    "--learner maml --learner protonet --shots 5 --shots 20",
    "demo": "cropmeta demo --out demo-out --seed 1",
    "preview": "cropmeta preview poltava.tif --out poltava.png",
}
COMMANDS = {
    "synth": with_threads(synth),
    "preprocess": with_threads(preprocess),
    "taxonomy": taxonomy_,  # a listing: no work to thread
    "meta-train": with_threads(with_meta_options(older_names=True)(meta_train)),
    "adapt": with_threads(adapt),
    "learners": learners_,  # a listing: no work to thread
    "suggest-labels": with_threads(suggest_labels),
    "map": with_threads(map_),
    "evaluate": with_threads(with_meta_options()(evaluate)),
    "demo": with_threads(demo),
    "preview": with_threads(preview),
}
for name, command in COMMANDS.items():
    app.command(name, epilog=f"Example: {EXAMPLES[name]}")(command)
