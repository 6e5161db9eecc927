"""Running pipelines/*.sh from the tests: this environment's console script, one thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
SHARED = PIPELINES.parents[1] / "shared" / "data"  # where shared-data.yaml's paths point
#: The protocol at its smallest: these tests check the pipelines, not the figures (30 trees per
#: random forest baseline rather than 300: a third of a tiny evaluation's time was forests).
TINY = {"ITERATIONS": "5", "SEEDS": "1", "SHOTS": "1", "LEARNERS": "protonet", "FOREST_TREES": "30"}


def run_pipeline(name: str, out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("cropmeta")  # this environment's, not another on PATH
    exe = str(exe) if exe.exists() else "cropmeta"
    return subprocess.run(
        ["bash", str(PIPELINES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        # one thread, as in-process tests: oversubscribed OpenMP threads slow torch tenfold
        env={**os.environ, "OMP_NUM_THREADS": "1", "CROPMETA": exe, "OUT": str(out), **env},
    )


def assert_report(out: Path, targets: set[str]) -> None:
    results = json.loads((out / "results.json").read_text())
    assert {f["target"] for f in results["folds"]} == targets
    assert set(results["summary"]) == targets  # every fold was scored
    report = (out / "report.md").read_text()
    assert all(f"## Held-out region: {t}" in report for t in targets)
    assert list((out / "figures").glob("*.png"))
