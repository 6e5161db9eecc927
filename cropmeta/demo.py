"""The whole chain on the built-in synthetic world, as one call (``cropmeta demo``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cropmeta.adapt.adapt import adapt_region
from cropmeta.catalog import load_catalog
from cropmeta.evaluate.plots import plot_training, preview_map
from cropmeta.evaluate.report import metrics_table
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.learners.meta_train import MetaTrainConfig, meta_train
from cropmeta.mapping.crop_map import map_region
from cropmeta.models.bundle import load_bundle
from cropmeta.ownership import claim, output_folder
from cropmeta.progress import console, progress_bar
from cropmeta.synth import make_world

#: Task shapes that the regions of each world scale can fill.
TASKS = {"demo": dict(n_way=5, k_shot=5, q_query=10), "tiny": dict(n_way=4, k_shot=3, q_query=4)}
#: Pixels outside the fields each region gives as class non_crop (about a crop's number of
#: fields), so the map leaves roads, villages, woods and water out of the crops.
NON_CROP_PIXELS = {"demo": 300, "tiny": 40}


def run_demo(
    out: str | Path,
    seed: int = 0,
    scale: str = "demo",
    iterations: int = 300,
    shots: int = 5,
    overwrite: bool = False,
) -> dict:
    """synth → preprocess every region (its fields, and pixels outside them as class non_crop)
    → meta-train on the sources → adapt to each target with ``shots`` labelled samples per
    class (beside the baselines) → map the first target.

    Returns a summary (metrics per target, output paths, seconds per stage), also written to
    ``out/summary.json``. ``out`` must be a demo folder (or new, or empty) unless ``overwrite``.
    """
    out = Path(out)
    claim(out, "demo", overwrite=overwrite, in_place=True)
    with output_folder(out, "demo"):
        summary = _run(out, seed, scale, iterations, shots)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _run(out: Path, seed: int, scale: str, iterations: int, shots: int) -> dict:
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 2)
        clock = now

    with progress_bar("synth world") as bar:
        catalog_path = make_world(
            out / "world", seed=seed, scale=scale, progress=lambda _d, i, n: bar(i, n)
        )
    lap("synth")
    catalog = load_catalog(catalog_path)
    datasets = {}
    for entry in catalog.regions:
        datasets[entry.name] = out / "regions" / f"{entry.name}.zarr"
        with progress_bar(f"preprocess {entry.name}") as bar:
            preprocess_catalog_region(
                catalog_path,
                entry.name,
                datasets[entry.name],
                progress=bar,
                non_crop_pixels=NON_CROP_PIXELS[scale],
            )
    lap("preprocess")
    meta_model = out / "models" / "maml-tempcnn"
    with progress_bar("meta-train maml") as bar:
        meta_train(
            [datasets[r.name] for r in catalog.sources()],
            meta_model,
            MetaTrainConfig(iterations=iterations, **TASKS[scale]),
            seed=seed,
            progress=bar,
        )
    lap("meta-train")
    results = {}
    for entry in catalog.targets():
        result = adapt_region(
            meta_model,
            datasets[entry.name],
            out / "models" / f"adapted-{entry.name}",
            shots=shots,
            seed=seed,
            transductive=False,  # the corrections double adapt's time: `evaluate` scores them
        )
        console.print(metrics_table(result))
        results[entry.name] = result
    lap("adapt")
    first = catalog.targets()[0]
    crop_map = out / f"map-{first.name}.tif"
    with progress_bar(f"map {first.name}") as bar:
        map_region(results[first.name].model_dir, catalog.path(first.tiles), crop_map, progress=bar)
    preview = preview_map(crop_map, crop_map.with_suffix(".png"))
    curves = plot_training(load_bundle(meta_model)[1].history, out / "meta-training.png")
    lap("map")
    seconds["total"] = round(sum(seconds.values()), 2)
    console.print(
        f"crop map of {first.name}: [bold]{crop_map}[/] (preview {preview}); "
        f"training curves: {curves}; {seconds['total']:.0f} s in all"
    )
    return {
        "targets": {
            name: {
                "classes": r.classes,
                "shots": r.shots,
                "n_query": r.n_query,
                "metrics": r.metrics,
            }
            for name, r in results.items()
        },
        "map": str(crop_map),
        "figures": [str(preview), str(curves)],
        "seconds": seconds,
        "seed": seed,
    }
