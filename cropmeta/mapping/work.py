"""The blocks a mapping run has finished, kept on disk so that a killed run resumes.

Next to the output ``OUT`` lives a hidden work folder ``.OUT.cropmeta-work`` holding a Zarr
store with one chunk per block for every raster output, each block's per-field sums (``.npy``,
read without pickle), and a ``done/<block>`` marker written after the block's data: a block
counts as finished only once its marker exists, so a block cut short by a kill is recomputed.

**When a run resumes.** ``run.json``, written last when the folder is made, records the run's
fingerprint (:func:`fingerprint`); a re-run resumes only when its own fingerprint is equal,
and otherwise starts afresh instead of mixing results. The fingerprint holds:

* ``model``: the SHA-256 of every file of the model folder (weights, config);
* ``files``: a content signature of every file the rasters are read from
  (:attr:`~cropmeta.ingest.sources.base.RasterStack.source_files`: one GeoTIFF per date, band
  files, STAC JSON and assets, a netCDF file or a Zarr store's metadata and chunk files) and of
  the AOI and field polygon files. A signature (:func:`cropmeta.fileinfo.signature`) is the
  file's size, its modification time in nanoseconds, and the SHA-256 of its first 64 KiB
  followed by 16 pieces of 4 KiB read at fixed offsets evenly spaced from the start of the
  file to its last 4 KiB (offset ``k * max(0, size - 4096) // 15`` for k = 0..15). A tile
  rewritten in place under the same name, date and grid therefore starts the run afresh (so
  does a file merely touched or copied without its time: the check errs on recomputing);
* ``raster`` (the raster spec: layout, path, bands, scale, offset, nodata, valid range),
  ``stack`` (dates, CRS, transform, bands as read), ``width``, ``height``;
* the options that change output bytes: ``block``, ``batch``, ``probabilities``,
  ``uncertainty``, ``geometry`` (the SHA-256 of the AOI and field polygons as used, in the
  raster's CRS), ``classes`` (how many); ``workers`` and ``scheduler`` change where blocks run,
  never their bytes, so they are left out;
* ``versions`` of cropmeta and torch (the code that computes a block) and the store ``format``.

**When the folder goes.** It is created only once the inputs are checked (model loaded,
rasters opened, the scheduler reached), and removed when the outputs are complete, and also
when the run fails with an error (:class:`Exception`): a failed run leaves nothing behind,
even a store an earlier run had started, whose fingerprint matched (folders made to hold it go
too, when empty). An interrupted run
(Ctrl-C, a kill, :class:`SystemExit`) keeps it, so that it can resume. A folder at that path is
only ever removed when it is a work store: it holds ``run.json`` or the marker
:data:`MARKER` that is written first when a store is made; anything else there is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from types import TracebackType

import numpy as np
import zarr
from rasterio.windows import Window

from cropmeta.errors import InputError, missing_folders
from cropmeta.fileinfo import sha256, signature
from cropmeta.mapping.blocks import NODATA_CLASS, NODATA_SCALED, BlockResult, MapJob

RUN = "run.json"
#: Written first into a new work folder: what makes it cropmeta's before ``run.json`` exists.
MARKER = "cropmeta-work.json"
#: Layout of the work folder; stores of another format are not resumed.
FORMAT = 2


def work_folder(out: Path) -> Path:
    """The work folder of the map ``out``: ``.OUT.cropmeta-work`` beside it."""
    return out.with_name(f".{out.name}.cropmeta-work")


def is_work_store(path: Path) -> bool:
    """Whether ``path`` is a folder cropmeta made as a work store (not a link, not a file)."""
    return (
        path.is_dir()
        and not path.is_symlink()
        and ((path / RUN).is_file() or (path / MARKER).is_file())
    )


def _read_error(path: Path, exc: OSError) -> InputError:
    return InputError(path, f"cannot read ({exc.strerror or exc.__class__.__name__})")


def input_signatures(model_dir: Path, files: Iterable[Path]) -> dict:
    """What the model and input files hold: the SHA-256 of every file of ``model_dir`` by name,
    and the content signature (:func:`cropmeta.fileinfo.signature`) of each of ``files`` by
    path. Raises :class:`InputError` naming a file that cannot be read."""
    model, signed = {}, {}
    for p in sorted(model_dir.iterdir()):
        if p.is_file():
            try:
                model[p.name] = sha256(p)
            except OSError as exc:
                raise _read_error(p, exc) from None
    for p in files:
        try:
            signed[str(p)] = signature(p)
        except OSError as exc:
            raise _read_error(p, exc) from None
    return {"model": model, "files": signed}


def inputs_digest(inputs: dict) -> str:
    """One SHA-256 of :func:`input_signatures`' answer (:attr:`MapJob.inputs`)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def fingerprint(job: MapJob, stack_identity: dict, n_classes: int, inputs: dict) -> dict:
    """What decides a run's bytes (see the module docstring): ``inputs`` from
    :func:`input_signatures`, the rasters as read, the options and the code's versions."""
    import torch

    from cropmeta import __version__

    geometry = hashlib.sha256()
    for g in job.aoi:
        geometry.update(g)
    for i, g in job.fields:
        geometry.update(i.to_bytes(8, "little") + g)
    return {
        "format": FORMAT,
        "versions": {"cropmeta": __version__, "torch": torch.__version__},
        "model": inputs["model"],
        "files": inputs["files"],
        "raster": json.loads(job.raster),
        "stack": stack_identity,
        "width": job.width,
        "height": job.height,
        "block": job.block,
        "batch": job.batch,
        "probabilities": job.probabilities,
        "min_probability": job.min_probability,
        "uncertainty": job.uncertainty,
        "geometry": geometry.hexdigest(),
        "classes": n_classes,
    }


class WorkStore:
    """Finished blocks of one run (see the module docstring).

    Used as a context manager: leaving the ``with`` block normally or with an
    :class:`Exception` removes the folder (and the folders made for it, when left empty);
    leaving it with a :class:`KeyboardInterrupt` or :class:`SystemExit` keeps it.
    """

    def __init__(
        self, out: Path, job: MapJob, n_classes: int, identity: dict, inputs: dict
    ) -> None:
        self.root = work_folder(out)
        self.job = job
        self.resumed = False
        self.made: list[Path] = []
        run = fingerprint(job, identity, n_classes, inputs)
        meta = self.root / RUN
        if self.root.exists() or self.root.is_symlink():
            if not is_work_store(self.root):
                raise InputError(
                    self.root,
                    "exists and is not a cropmeta work folder; move it away to map here",
                )
            if meta.is_file() and _read_run(meta) == run:
                self.resumed = True
                self.group = zarr.open_group(self.root / "blocks.zarr", mode="r+")
                return
            self.remove()
        self.made = missing_folders(self.root.parent)
        self.root.mkdir(parents=True)
        (self.root / MARKER).write_text(json.dumps({"kind": "map-work-store"}) + "\n")
        (self.root / "done").mkdir()
        (self.root / "fields").mkdir()
        self.group = zarr.open_group(self.root / "blocks.zarr", mode="w")
        b, h, w = job.block, job.height, job.width
        self.group.create_array(
            "classes", shape=(h, w), chunks=(b, b), dtype="uint8", fill_value=NODATA_CLASS
        )
        if job.probabilities:
            self.group.create_array(
                "probabilities",
                shape=(n_classes, h, w),
                chunks=(n_classes, b, b),
                dtype="uint8",
                fill_value=NODATA_SCALED,
            )
        if job.uncertainty != "none":
            self.group.create_array(
                "uncertainty", shape=(h, w), chunks=(b, b), dtype="uint8", fill_value=NODATA_SCALED
            )
        meta.write_text(json.dumps(run, indent=1))  # last: a half-made store is not resumed

    def __enter__(self) -> WorkStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, Exception):
            self.discard()

    def done(self) -> set[int]:
        return {int(p.name) for p in (self.root / "done").iterdir()}

    def write(self, result: BlockResult) -> None:
        """Store one block's outputs, then mark it finished."""
        win = self.job.window(result.index)
        rows, cols = win.toslices()
        self.group["classes"][rows, cols] = result.classes
        if result.probabilities is not None:
            self.group["probabilities"][:, rows, cols] = result.probabilities
        if result.uncertainty is not None:
            self.group["uncertainty"][rows, cols] = result.uncertainty
        if len(result.field_ids):
            stem = self.root / "fields" / str(result.index)
            np.save(f"{stem}.ids.npy", result.field_ids)
            np.save(f"{stem}.sums.npy", result.field_sums)
            np.save(f"{stem}.counts.npy", result.field_counts)
        (self.root / "done" / str(result.index)).touch()

    def read(self, name: str, window: Window) -> np.ndarray:
        """A window of one raster output, (rows, cols) or (band, rows, cols)."""
        rows, cols = window.toslices()
        arr = self.group[name]
        return arr[:, rows, cols] if arr.ndim == 3 else arr[rows, cols]

    def field_totals(self, n_fields: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Per field: summed class probabilities (field, class) and classified pixel counts,
        added up block by block in block order (the same sums whatever ran the blocks)."""
        sums = np.zeros((n_fields, n_classes))
        counts = np.zeros(n_fields, np.int64)
        for index in range(self.job.n_blocks):
            stem = self.root / "fields" / str(index)
            if not Path(f"{stem}.ids.npy").is_file():
                continue
            ids = np.load(f"{stem}.ids.npy", allow_pickle=False)
            sums[ids] += np.load(f"{stem}.sums.npy", allow_pickle=False)
            counts[ids] += np.load(f"{stem}.counts.npy", allow_pickle=False)
        return sums, counts

    def remove(self) -> None:
        """Delete the work folder, only if it is one (:func:`is_work_store`)."""
        if is_work_store(self.root):
            shutil.rmtree(self.root, ignore_errors=True)

    def discard(self) -> None:
        """:meth:`remove`, then the folders made for this store, innermost first, if empty."""
        self.remove()
        for folder in self.made:
            with suppress(OSError):
                folder.rmdir()


def _read_run(meta: Path) -> dict | None:
    """A store's recorded fingerprint; None when unreadable (a store cut short while written)."""
    try:
        return json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
