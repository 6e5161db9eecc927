"""Every learner (and encoder) on the demo world: meta-train on the 3 sources, adapt to each
target with k labelled fields per class, beside the baselines on the same support sets.

Run: .venv/bin/python benchmarks/learners.py --iterations 300 --shots 5 --seed 0
Hyper-parameters are the defaults (chosen on meta-validation tasks of the sources only); the
targets' query fields are never used for any choice. One support draw per target: the protocol
with seeds and confidence intervals is issue 6's `cropmeta evaluate`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from cropmeta.adapt.adapt import adapt
from cropmeta.adapt.score import score
from cropmeta.catalog import load_catalog
from cropmeta.ingest.parallel import preprocess_regions
from cropmeta.learners.meta_train import MetaTrainConfig, meta_train
from cropmeta.learners.registry import LEARNERS
from cropmeta.synth import make_world

RUNS = [(name, "tempcnn") for name in LEARNERS] + [
    ("maml", encoder) for encoder in ("lstm", "transformer", "ltae")
]


def cell(m: dict[str, float]) -> str:
    return f"{m['overall_accuracy']:.3f} / {m['macro_f1']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learners", nargs="*", help="only these learners (default: all)")
    args = parser.parse_args()
    runs = [r for r in RUNS if not args.learners or r[0] in args.learners]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog_path = make_world(root / "world", seed=args.seed)
        catalog = load_catalog(catalog_path)
        names = [r.name for r in catalog.regions]
        data = preprocess_regions(catalog_path, names, root / "regions", workers=1)
        sources = [data[r.name] for r in catalog.sources()]
        targets = [t.name for t in catalog.targets()]
        rows, baselines = [], {}
        for algorithm, encoder in runs:
            cfg = MetaTrainConfig(
                algorithm=algorithm, encoder={"name": encoder}, iterations=args.iterations
            )
            start = time.perf_counter()
            model = meta_train(sources, root / f"m-{algorithm}-{encoder}", cfg, seed=args.seed)
            seconds = time.perf_counter() - start
            cells = []
            for target in targets:
                m = score(adapt(model, data[target], shots=args.shots, seed=args.seed)).metrics
                cells.append(cell(m.pop(algorithm)))
                # baselines depend on the encoder only (same shots, same seeded pre-training)
                for method, scores in m.items():
                    baselines.setdefault((method, encoder), {})[target] = cell(scores)
            rows.append(f"| {algorithm} | {encoder} | {seconds:.0f} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
        head = " | ".join(f"{t} OA / F1" for t in targets)
        print(f"| method | encoder | meta-train s | {head} |")
        print("|---|---|---:|" + "---|" * len(targets))
        print("\n".join(rows))
        for (method, encoder), cells in baselines.items():
            print(f"| {method} | {encoder} | – | " + " | ".join(cells[t] for t in targets) + " |")


if __name__ == "__main__":
    main()
