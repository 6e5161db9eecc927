"""Preprocess several catalog regions at once: across local cores, or on a Dask cluster.

Each region is independent (its own rasters or table, its own output store), so regions are
the unit of work: a process pool over local cores by default, or ``dask.distributed`` when a
scheduler address is given (the workers must see the same paths).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

from cropmeta.errors import InputError
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.ownership import claim, output_folder
from cropmeta.threads import free_cores

if TYPE_CHECKING:
    from dask.distributed import Client


#: Seconds to wait for a Dask scheduler to answer before reporting it unreachable.
CONNECT_TIMEOUT = 10


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> Client:
    """A client of the running Dask scheduler at ``address``.

    Raises :class:`InputError` naming ``--scheduler`` when the address is not one or nothing
    answers there within ``timeout`` seconds (Dask on its own waits 30 s, then raises a bare
    ``OSError``).
    """
    from dask.distributed import Client

    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        problem = (str(exc).splitlines() or [exc.__class__.__name__])[0][:200]
        raise InputError(
            "--scheduler", f"cannot reach the Dask scheduler at {address} ({problem})"
        ) from None


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
    overwrite: bool = False,
    **options,
) -> dict[str, Path]:
    """Write ``out_dir/<region>.zarr`` for every region; returns the paths by region name.

    ``workers`` local processes (default: the cores not already busy, at most one per region),
    or the Dask cluster at ``scheduler``. The first failing region's error is raised after the
    others end.
    """
    from cropmeta.catalog import load_catalog

    cat = load_catalog(catalog)
    for name in regions:
        cat.region(name)  # unknown names fail before any work starts
    outs = {name: Path(out_dir) / f"{name}.zarr" for name in regions}
    each = {path: "region-dataset" for path in outs.values()}
    inputs = [catalog, *cat.inputs(regions)]
    claim(
        out_dir, "region-datasets", inputs=inputs, overwrite=overwrite, companions=each,
        in_place=True,
    )  # fmt: skip
    options = {**options, "overwrite": overwrite}
    jobs = [(str(catalog), name, str(outs[name]), options) for name in regions]
    with output_folder(out_dir, "region-datasets"):
        _run(jobs, workers, scheduler, progress)
    return outs


def _run(jobs: list[tuple], workers: int | None, scheduler: str | None, progress) -> None:
    """Every job, on the Dask cluster at ``scheduler`` or over ``workers`` local processes.

    A scheduler that does not answer within a few seconds is an :class:`InputError` naming
    ``--scheduler``, raised before any job starts.
    """
    if scheduler is not None:
        with connect(scheduler) as client:
            futures = [client.submit(_one, *job, pure=False) for job in jobs]
            for done, future in enumerate(futures, start=1):
                future.result()
                if progress:
                    progress(done, len(jobs))
        return
    workers = max(1, min(workers or free_cores(), len(jobs)))
    if workers == 1:
        for done, job in enumerate(jobs, start=1):
            _one(*job)
            if progress:
                progress(done, len(jobs))
        return
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_one, *job) for job in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()
            if progress:
                progress(done, len(jobs))
