"""Where blocks run: in this process, on a Dask LocalCluster over the cores, or on a cluster.

Workers compute blocks (:func:`~cropmeta.mapping.blocks.compute_block`) and send the small
uint8 results back; this process stores them as they arrive. At most two blocks per worker are
in flight, so memory stays bounded however large the raster. Workers must see the model and
raster paths (a shared file system on a real cluster).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cropmeta.mapping.blocks import BlockResult, MapJob, compute_block

BLOCKS_PER_WORKER = 4


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def _client(workers: int, scheduler: str | None) -> Iterator[object]:
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_blocks(
    job: MapJob,
    todo: list[int],
    on_result: Callable[[BlockResult], None],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
) -> None:
    """Compute blocks ``todo`` of ``job`` and hand each result to ``on_result`` (in this
    process, in completion order).

    By default every core gets a worker, but a small map (fewer than
    :data:`BLOCKS_PER_WORKER` blocks a worker) does not pay for starting processes.
    """
    if workers is None:
        workers = min(default_workers(), max(1, len(todo) // BLOCKS_PER_WORKER))
    workers = min(workers, max(1, len(todo)))
    if scheduler is None and workers == 1:
        for index in todo:
            on_result(compute_block(job, index))
        return
    from dask.distributed import as_completed

    with _client(workers, scheduler) as client:
        shared = client.scatter(job, broadcast=True)
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        pending = iter(todo)
        first = [next(pending) for _ in range(min(2 * n_workers, len(todo)))]
        running = as_completed([client.submit(compute_block, shared, i, pure=False) for i in first])
        for future in running:
            on_result(future.result())
            future.release()
            nxt = next(pending, None)
            if nxt is not None:
                running.add(client.submit(compute_block, shared, nxt, pure=False))
