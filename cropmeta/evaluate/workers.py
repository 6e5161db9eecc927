"""Run an evaluation's independent jobs over the local cores (issue 21: `evaluate` without
repeated work).

Meta-training a learner for a fold and scoring a support/query draw do not depend on one
another, so they run in separate processes — spawned, not forked (a fork of a process whose
OpenMP threads have started can hang), one intra-op thread each, so workers never
oversubscribe the cores and every job sums its floats as it would alone: the figures are those
of a one-worker run at one thread. Results come back in the jobs' order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from cropmeta.threads import use_threads

Progress = Callable[[int, int], None]


def run_jobs(
    job: Callable[..., Any],
    args: Sequence[tuple],
    workers: int = 1,
    progress: Progress | None = None,
) -> list[Any]:
    """``job(*a)`` for every ``a`` in ``args``, in order: here when ``workers`` is 1 (at this
    process's thread count), else over ``workers`` spawned processes. The first job to fail
    cancels those not started and its error is raised."""
    if workers <= 1 or len(args) <= 1:
        results = []
        for done, a in enumerate(args, start=1):
            results.append(job(*a))
            if progress:
                progress(done, len(args))
        return results
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        min(workers, len(args)), mp_context=context, initializer=use_threads, initargs=(1,)
    )
    with pool:
        futures = [pool.submit(job, *a) for a in args]
        pending, done = set(futures), 0
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if future.exception() is not None:
                    pool.shutdown(cancel_futures=True)
                    raise future.exception()
                done += 1
                if progress:
                    progress(done, len(args))
    return [future.result() for future in futures]
