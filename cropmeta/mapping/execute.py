"""Where blocks run: in this process, on a Dask LocalCluster over the cores, or on a cluster.

Workers compute blocks (:func:`~cropmeta.mapping.blocks.compute_block`) and send the small
uint8 results back; this process stores them as they arrive. At most two blocks per worker are
in flight, so memory stays bounded however large the raster. Workers must see the model and
raster paths (a shared file system on a real cluster).

A scheduler address is tried once, with a short timeout
(:func:`cropmeta.ingest.parallel.connect`): one that does not answer is bad input, reported as
such (``--scheduler``) before any work starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cropmeta.ingest.parallel import connect
from cropmeta.mapping.blocks import BlockResult, MapJob, compute_block
from cropmeta.threads import free_cores

if TYPE_CHECKING:
    from dask.distributed import Client

BLOCKS_PER_WORKER = 4


def default_workers() -> int:
    """Local processes when none are named: the cores not already busy
    (:func:`cropmeta.threads.free_cores`), each block running on one thread."""
    return free_cores()


@contextmanager
def scheduler_client(address: str | None) -> Iterator[Client | None]:
    """:func:`connect` to ``address`` for the ``with`` block (None without an address): a
    caller checks the scheduler before it creates anything, and its blocks then run there."""
    if address is None:
        yield None
        return
    with connect(address) as client:
        yield client


@contextmanager
def _client(workers: int, scheduler: str | None, client: Client | None) -> Iterator[Client]:
    from dask.distributed import Client, LocalCluster

    if client is not None:
        yield client
        return
    if scheduler is not None:
        with connect(scheduler) as own:
            yield own
        return
    with (
        _quiet("distributed"),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # no dashboard, but the scheduler's HTTP server still listens (default :8787,
            # warning when another cluster has it): any free local port instead
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as local,
    ):
        yield local


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only errors from logger ``name`` while our own cluster runs.

    A local cluster is an implementation detail of the run: its scheduler and nannies log
    every start and stop at INFO, which would reach the command's stderr, and its workers log
    a failed block at ERROR (``silence_logs=CRITICAL`` keeps that in the worker) although the
    block's exception comes back here and is reported once, as one line.
    """
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def run_blocks(
    job: MapJob,
    todo: list[int],
    on_result: Callable[[BlockResult], None],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Client | None = None,
) -> None:
    """Compute blocks ``todo`` of ``job`` and hand each result to ``on_result`` (in this
    process, in completion order).

    Blocks run on ``client``'s cluster when given (see :func:`scheduler_client`), else on the
    scheduler at ``scheduler``, else locally: by default every core gets a worker, but a small
    map (fewer than :data:`BLOCKS_PER_WORKER` blocks a worker) does not pay for starting
    processes. A block's error (an :class:`InputError` naming a damaged raster, say) is raised
    here, from whichever process computed it.
    """
    if workers is None:
        workers = min(default_workers(), max(1, len(todo) // BLOCKS_PER_WORKER))
    workers = min(workers, max(1, len(todo)))
    if client is None and scheduler is None and workers == 1:
        for index in todo:
            on_result(compute_block(job, index))
        return
    if not todo:
        return
    from dask.distributed import as_completed

    with _client(workers, scheduler, client) as pool:
        shared = pool.scatter(job, broadcast=True)
        n_workers = max(1, len(pool.scheduler_info().get("workers", {})) or workers)
        pending = iter(todo)
        first = [next(pending) for _ in range(min(2 * n_workers, len(todo)))]
        running = as_completed([pool.submit(compute_block, shared, i, pure=False) for i in first])
        for future in running:
            on_result(future.result())
            future.release()
            nxt = next(pending, None)
            if nxt is not None:
                running.add(pool.submit(compute_block, shared, nxt, pure=False))
