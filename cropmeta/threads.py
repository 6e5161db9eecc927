"""How many CPU threads and processes a command uses.

torch's own default is one thread per core whatever else runs: on a machine already busy that
oversubscribes the cores and the threads wait on each other (meta-training was measured 4-9×
slower with 2 threads than with 1 on a busy 2-core machine; issue 21). And the thread count
changes results: another count sums floats in another order, and training drifts apart
(docs/reliability.md). So a command's torch work runs on **one thread** unless ``--threads N``
(or ``OMP_NUM_THREADS``) asks for more — a count that never oversubscribes and never depends on
what else is running — and the count is recorded in what the command writes. Work that
parallelises without changing a result (the map's blocks) runs in processes instead, as many as
there are cores not already busy (:func:`free_cores`).
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_cores() -> int:
    """The available cores less the one-minute load average, rounded, at least 1 (the
    convention of ``make --load-average`` and GNU parallel's ``--load``)."""
    cores = available_cores()
    try:
        busy = round(os.getloadavg()[0])
    except OSError:  # no load average on this system
        busy = 0
    return max(1, min(cores, cores - busy))


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set to a positive count, else 1."""
    named = os.environ.get("OMP_NUM_THREADS", "")
    return int(named) if named.isdigit() and int(named) > 0 else 1


def use_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads to ``requested`` (default: :func:`default_threads`) and
    return the count."""
    import torch

    count = requested or default_threads()
    torch.set_num_threads(count)
    return count
