"""cropmeta: few-shot crop-type mapping with meta-learning.

The stages, in the order a job runs them (each a function a notebook can call; the CLI is a thin
layer over them)::

    import cropmeta

    cropmeta.make_world("world", seed=0)                         # a synthetic demo world
    cropmeta.preprocess("world/poltava/tiles", "world/poltava/fields.gpkg", "kultura",
                        "poltava.zarr")                          # tiles + fields → region dataset
    model = cropmeta.meta_train(["brandenburg.zarr", "beauce.zarr"], "model/")
    adapted = cropmeta.adapt_region(model, "poltava.zarr", "adapted/", shots=5)
    cropmeta.map_region(adapted, "world/poltava/tiles", "poltava.tif")
    cropmeta.evaluate_catalog("world/catalog.yaml", "evaluation/") # which learner, how many labels

Names load on first use, so ``import cropmeta`` stays light (no torch until a stage needs it).
(``adapt_region`` and ``evaluate_catalog`` keep their long names: ``cropmeta.adapt`` and
``cropmeta.evaluate`` are the stages' packages.)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name → (module, attribute), in the pipeline's order
_EXPORTS = {
    "make_world": ("cropmeta.synth", "make_world"),
    "PreprocessOptions": ("cropmeta.ingest.options", "PreprocessOptions"),
    "preprocess": ("cropmeta.ingest.preprocess", "preprocess_region"),
    "preprocess_catalog_region": ("cropmeta.ingest.catalog_regions", "preprocess_catalog_region"),
    "MetaTrainConfig": ("cropmeta.learners.config", "MetaTrainConfig"),
    "meta_train": ("cropmeta.learners.meta_train", "meta_train"),
    "adapt_region": ("cropmeta.adapt.adapt", "adapt_region"),
    "MapOptions": ("cropmeta.mapping.options", "MapOptions"),
    "map_region": ("cropmeta.mapping.crop_map", "map_region"),
    "suggest_labels": ("cropmeta.mapping.suggest", "suggest_labels"),
    "EvaluationConfig": ("cropmeta.evaluate.protocol", "EvaluationConfig"),
    "evaluate_catalog": ("cropmeta.evaluate.evaluation", "evaluate_catalog"),
    "run_demo": ("cropmeta.demo", "run_demo"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a stage's function when it is first asked for (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cropmeta' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
