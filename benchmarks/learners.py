"""Every learner (and encoder) on the demo world: meta-train on the 3 sources, adapt to each
target with k labelled fields per class, beside the baselines on the same support sets.

Run: .venv/bin/python benchmarks/learners.py --iterations 300 --shots 5 --seed 0
Hyper-parameters are the defaults (chosen on meta-validation tasks of the sources only); the
targets' query fields are never used for any choice. One support draw per target: the protocol
with seeds and confidence intervals is issue 6's `cropmeta evaluate`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cropmeta.adapt.adapt import adapt_region
from cropmeta.catalog import load_catalog
from cropmeta.ingest.parallel import preprocess_regions
from cropmeta.learners.meta_train import MetaTrainConfig, meta_train
from cropmeta.learners.registry import LEARNERS
from cropmeta.synth import make_world

RUNS = [(name, "tempcnn") for name in LEARNERS] + [
    ("maml", encoder) for encoder in ("lstm", "transformer", "ltae")
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog_path = make_world(root / "world", seed=args.seed)
        catalog = load_catalog(catalog_path)
        names = [r.name for r in catalog.regions]
        data = preprocess_regions(catalog_path, names, root / "regions", workers=1)
        sources = [data[r.name] for r in catalog.sources()]
        print(
            "| learner | encoder | meta-train s | target | OA | macro-F1 | scratch OA / F1 "
            "| RF OA / F1 |"
        )
        print("|---|---|---:|---|---:|---:|---|---|")
        for algorithm, encoder in RUNS:
            cfg = MetaTrainConfig(
                algorithm=algorithm, encoder={"name": encoder}, iterations=args.iterations
            )
            start = time.perf_counter()
            model = meta_train(sources, root / f"m-{algorithm}-{encoder}", cfg, seed=args.seed)
            seconds = time.perf_counter() - start
            for target in catalog.targets():
                result = adapt_region(
                    model, data[target.name], root / "adapted", shots=args.shots, seed=args.seed
                )
                m = result.metrics
                learned, scratch, rf = m[algorithm], m["from_scratch"], m["random_forest"]
                print(
                    f"| {algorithm} | {encoder} | {seconds:.0f} | {target.name} "
                    f"| {learned['overall_accuracy']:.3f} | {learned['macro_f1']:.3f} "
                    f"| {scratch['overall_accuracy']:.3f} / {scratch['macro_f1']:.3f} "
                    f"| {rf['overall_accuracy']:.3f} / {rf['macro_f1']:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
