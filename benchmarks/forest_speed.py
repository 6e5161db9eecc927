"""How fast a saved random forest maps, against scikit-learn's own forest and the TempCNN.

A random forest as `cropmeta adapt --method random_forest` saves it (300 trees, scikit-learn's
defaults) is fitted on 20 pixels per class of a synthetic tile (7 classes: k-means clusters of
the prepared series, so the trees grow to a realistic depth), then, in the same run:

``in memory``, one thread, the same N prepared pixels: scikit-learn's ``predict_proba``
(``n_jobs=1``) of the fitted forest; cropmeta's forest loaded from its saved tensors (leaves
found by scikit-learn's compiled ``Tree.apply`` on trees rebuilt from the tensors); the same
with the tensor walk it used before (kept as the fallback); the TempCNN's forward pass. Each
round times all four in turn, each from the prepared block as the map holds it (scikit-learn's
from its flattened copy); medians over ``--repeats`` rounds, and the median of the rounds'
ratios to scikit-learn's (target ≥ 1×).

``end to end``: `map_region` of the whole tile with the saved forest and with the TempCNN
(all cores, default options), pixels per second (target: forest ≥ TempCNN).

Run: .venv/bin/python benchmarks/forest_speed.py --size 1024
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, str(Path(__file__).parent))
from map_throughput import _job, bench_model, end_to_end, tiles  # noqa: E402

from cropmeta.mapping.blocks import context, prepare_block  # noqa: E402
from cropmeta.models import forest as forest_module  # noqa: E402
from cropmeta.models.bundle import load_bundle, load_config, save_bundle  # noqa: E402
from cropmeta.models.forest import ForestClassifier  # noqa: E402

CLASSES = 7
PER_CLASS = 20


def round_robin(runs: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each of ``runs`` (name → callable), measured in turn ``repeats`` times after
    one warm-up each (the trees' rebuild is paid in it), so that a slower spell of the machine
    hits every contender alike."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return times


def saved_forest(work: Path, network: Path, x: torch.Tensor, seed: int) -> tuple[Path, object]:
    """The forest bundle (beside the TempCNN's, same preparation) and scikit-learn's forest."""
    flat = x.flatten(1).numpy()
    rng = np.random.default_rng(seed)
    labels = KMeans(CLASSES, n_init=3, random_state=seed).fit_predict(flat[::7])
    pool = np.flatnonzero(np.bincount(labels, minlength=CLASSES) >= PER_CLASS)
    picks = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False) for c in pool]
    )
    rf = RandomForestClassifier(forest_module.FOREST_TREES, random_state=seed, n_jobs=1)
    rf.fit(flat[::7][picks], labels[picks])
    out = work / f"forest-{seed}"
    save_bundle(ForestClassifier.from_sklearn(rf, CLASSES), load_config(network), out)
    return out, rf


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024, help="tile edge (px)")
    parser.add_argument("--pixels", type=int, default=16384, help="in-memory pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default="/tmp/cropmeta-bench-map")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(args.work)
    tile_dir = tiles(work, args.size, args.seed)
    network = bench_model(work, tile_dir, args.seed)
    job = _job(network, tile_dir, 256, 16384)
    x = torch.cat([prepare_block(job, i)[0] for i in range(min(job.n_blocks, 4))])
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))]
    x = x[: args.pixels]
    forest_dir, rf = saved_forest(work, network, x, args.seed)
    forest, _ = load_bundle(forest_dir)
    depth = forest.head.cfg.depth
    tempcnn = context(job).model
    flat32 = np.ascontiguousarray(x.flatten(1).numpy())
    torch.set_num_threads(1)
    print(f"{len(x):,} prepared pixels of a {args.size} px tile; forest: 300 trees, depth {depth}")

    compiled = forest_module.compiled_trees

    def walk():
        forest_module.compiled_trees = lambda head, n: None  # the tensor walk
        try:
            forest(x)
        finally:
            forest_module.compiled_trees = compiled

    runs = {  # each from the block as the map holds it: (pixel, step, band), float32
        "scikit-learn predict_proba": lambda: rf.predict_proba(x.flatten(1).numpy()),
        "cropmeta forest (compiled leaves)": lambda: forest(x),
        "cropmeta forest (tensor walk)": walk,
        "TempCNN forward": lambda: tempcnn(x, context(job).doy),
    }
    with torch.inference_mode():
        times = round_robin(runs, args.repeats)
    same = np.array_equal(forest.head(x.flatten(1)).numpy(), rf.predict_proba(flat32))
    sk = times["scikit-learn predict_proba"]
    print("\n| one thread, in memory | px/s (median) | ratio to scikit-learn (median of rounds) |")
    print("|---|---:|---:|")
    for name, seconds in times.items():
        ratio = statistics.median(a / b for a, b in zip(sk, seconds, strict=True))
        print(f"| {name} | {len(x) / statistics.median(seconds):,.0f} | {ratio:.2f}× |")
    print(f"\nprobabilities equal to scikit-learn's bit for bit: {same}")

    e2e = {}
    for name, model in (("forest", forest_dir), ("TempCNN", network), ("forest again", forest_dir)):
        context.cache_clear()
        e2e[name] = end_to_end(model, tile_dir, work / f"map-{name.split()[0]}.tif", None)
    forest_rate = statistics.median([e2e["forest"]["px_per_s"], e2e["forest again"]["px_per_s"]])
    print("\n| end to end (map_region, all cores) | px/s | seconds |\n|---|---:|---:|")
    for name, r in e2e.items():
        print(f"| {name} | {r['px_per_s']:,.0f} | {r['seconds']:.1f} |")
    print(f"\nforest / TempCNN end to end: {forest_rate / e2e['TempCNN']['px_per_s']:.2f}×")


if __name__ == "__main__":
    main()
