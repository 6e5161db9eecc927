"""What `cropmeta evaluate` costs with one worker and with several, and whether it finds the same.

Runs an evaluation pipeline (default: the full gee-tsda protocol, `pipelines/evaluate-gee-tsda.sh`:
maml + protonet, K = 1 2 5 10 20, 5 draws, 300 iterations, 4 folds) twice in one run, from
scratch each time (its own region datasets, its own models): with ``--workers 1`` (one process,
one torch thread: the protocol as it ran before issue 21) and with ``--workers N`` (N processes of
one thread). Prints the wall times, their ratio (target: N workers ≤ 0.5 × one worker's) and
whether every figure of ``results.json`` (every run's metrics and every model's training
history, wall times left out) is identical.

Run: .venv/bin/python benchmarks/evaluate_cost.py --workers 2 [--pipeline pipelines/X.sh]
     [--out bench-out/evaluate-cost] [-- extra `cropmeta evaluate` arguments]
The pipeline's environment settings (ITERATIONS, SEEDS, SHOTS, LEARNERS…) pass through.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timeless(value):
    """``value`` without wall times (``seconds``, ``val_seconds``…, at any depth)."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def figures(out: Path) -> list:
    results = json.loads((out / "results.json").read_text())
    return [timeless(results["runs"]), timeless(results["training"])]


def run(pipeline: Path, out: Path, workers: int, extra: list[str]) -> float:
    """Seconds the pipeline takes into ``out`` (removed first) with ``workers`` processes."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OUT": str(out), "OMP_NUM_THREADS": "1"}
    env.setdefault("CROPMETA", str(Path(sys.executable).with_name("cropmeta")))
    start = time.perf_counter()
    done = subprocess.run(
        ["bash", str(pipeline), "--workers", str(workers), "--threads", "1", *extra], env=env
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{pipeline} --workers {workers} failed (exit {done.returncode})")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines/evaluate-gee-tsda.sh")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out/evaluate-cost")
    parser.add_argument("extra", nargs="*", help="more `cropmeta evaluate` arguments")
    args = parser.parse_args()
    one = run(args.pipeline, args.out / "one", 1, args.extra)
    many = run(args.pipeline, args.out / "many", args.workers, args.extra)
    same = figures(args.out / "one") == figures(args.out / "many")
    print(f"| pipeline | 1 worker (s) | {args.workers} workers (s) | ratio | same figures |")
    print("|---|---|---|---|---|")
    print(f"| {args.pipeline.name} | {one:.0f} | {many:.0f} | {many / one:.2f} | {same} |")


if __name__ == "__main__":
    main()
