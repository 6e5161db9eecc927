"""Preprocess several catalog regions at once: across local cores, or on a Dask cluster.

Each region is independent (its own rasters or table, its own output store), so regions are
the unit of work: a process pool over local cores by default, or ``dask.distributed`` when a
scheduler address is given (the workers must see the same paths).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from cropmeta.ingest.preprocess import preprocess_catalog_region


def _one(catalog: str, region: str, out: str, options: dict) -> str:
    preprocess_catalog_region(catalog, region, out, **options)
    return out


def preprocess_regions(
    catalog: str | Path,
    regions: list[str],
    out_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> dict[str, Path]:
    """Write ``out_dir/<region>.zarr`` for every region; returns the paths by region name.

    ``workers`` local processes (default: all cores, at most one per region), or the Dask
    cluster at ``scheduler``. The first failing region's error is raised after the others end.
    """
    from cropmeta.catalog import load_catalog

    cat = load_catalog(catalog)
    for name in regions:
        cat.region(name)  # unknown names fail before any work starts
    outs = {name: Path(out_dir) / f"{name}.zarr" for name in regions}
    jobs = [(str(catalog), name, str(outs[name]), options) for name in regions]
    if scheduler is not None:
        from dask.distributed import Client

        with Client(scheduler) as client:
            futures = [client.submit(_one, *job, pure=False) for job in jobs]
            for done, future in enumerate(futures, start=1):
                future.result()
                if progress:
                    progress(done, len(jobs))
        return outs
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        for done, job in enumerate(jobs, start=1):
            _one(*job)
            if progress:
                progress(done, len(jobs))
        return outs
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_one, *job) for job in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()
            if progress:
                progress(done, len(jobs))
    return outs
