"""`--threads`: every command sets torch's threads (one by default) and records the count it
used; the map's processes leave busy cores alone."""

from __future__ import annotations

import json

import pytest
import torch
from checks import each

from cropmeta import threads


@pytest.mark.parametrize(
    ("cores", "load", "expected"),
    [(8, 0.2, 8), (8, 5.4, 3), (2, 7.0, 1)],  # idle; five cores busy; overloaded: never 0
)
def test_map_workers_leave_busy_cores_alone(monkeypatch, cores, load, expected):
    from cropmeta.mapping.execute import default_workers

    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    assert threads.free_cores() == default_workers() == expected


@pytest.mark.parametrize(("omp", "expected"), [(None, 1), ("3", 3), ("zero", 1), ("0", 1)])
def test_torch_threads_default_to_one_unless_omp_names_a_count(monkeypatch, omp, expected):
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert threads.default_threads() == expected


@pytest.mark.slow
def test_a_command_runs_with_the_threads_named_and_records_them(cli, regions, catalog, tmp_path):
    seen = []
    monkeypatch = pytest.MonkeyPatch()
    real = threads.use_threads
    monkeypatch.setattr(threads, "use_threads", lambda n=None: seen.append(real(n)) or seen[-1])
    try:
        sources = [regions[r.name] for r in catalog.sources()]
        meta, adapted = tmp_path / "meta", tmp_path / "adapted"
        args = ("--iterations", "2", "--ways", "3", "--shots", "2", "--queries", "2")
        res = cli("meta-train", *each("--region", sources), "--out", meta, *args, "--threads", "1")
        assert res.exit_code == 0, res.output
        target = regions[catalog.targets()[0].name]
        res = cli("adapt", "--model", meta, "--region", target, "--shots", "2", "--out", adapted,
                  "--method", "maml", "--threads", "3")  # fmt: skip
        assert res.exit_code == 0, res.output
    finally:
        monkeypatch.undo()
    assert seen == [1, 3]
    history = json.loads((adapted / "config.json").read_text())["history"]
    assert history["threads"] == 1 and history["adaptation"]["threads"] == 3
    res = cli("adapt", "--model", meta, "--region", target, "--out", tmp_path / "x", "--threads",
              "0")  # fmt: skip
    assert res.exit_code == 2 and "--threads" in res.output
    assert torch.get_num_threads() >= 1
