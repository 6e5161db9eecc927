"""The blocks a mapping run has finished, kept on disk so that a killed run resumes.

Next to the output ``OUT`` lives a hidden work folder ``.OUT.cropmeta-work`` holding a Zarr
store with one chunk per block for every raster output, each block's per-field sums (``.npy``,
read without pickle), and a ``done/<block>`` marker written after the block's data: a block
counts as finished only once its marker exists, so a block cut short by a kill is recomputed.
``run.json`` records what the run computes (model weights, rasters, options); a re-run with
other inputs starts afresh instead of mixing results. The folder is removed once the outputs
are complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import zarr
from rasterio.windows import Window

from cropmeta.mapping.blocks import NODATA_CLASS, NODATA_SCALED, BlockResult, MapJob


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(job: MapJob, stack_identity: dict, n_classes: int) -> dict:
    """What decides a run's bytes: the model files' digests, the rasters and the options."""
    model = Path(job.model_dir)
    geometry = hashlib.sha256()
    for g in job.aoi:
        geometry.update(g)
    for i, g in job.fields:
        geometry.update(i.to_bytes(8, "little") + g)
    return {
        "model": {p.name: _digest(p) for p in sorted(model.iterdir()) if p.is_file()},
        "raster": json.loads(job.raster),
        "stack": stack_identity,
        "width": job.width,
        "height": job.height,
        "block": job.block,
        "batch": job.batch,
        "probabilities": job.probabilities,
        "uncertainty": job.uncertainty,
        "geometry": geometry.hexdigest(),
        "classes": n_classes,
    }


class WorkStore:
    """Finished blocks of one run (see the module docstring)."""

    def __init__(self, out: Path, job: MapJob, n_classes: int, identity: dict) -> None:
        self.root = out.with_name(f".{out.name}.cropmeta-work")
        self.job = job
        self.resumed = False
        run = fingerprint(job, identity, n_classes)
        meta = self.root / "run.json"
        if meta.is_file() and json.loads(meta.read_text()) == run:
            self.resumed = True
            self.group = zarr.open_group(self.root / "blocks.zarr", mode="r+")
            return
        self.remove()
        (self.root / "done").mkdir(parents=True)
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
        shutil.rmtree(self.root, ignore_errors=True)
