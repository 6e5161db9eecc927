"""What cropmeta wrote, and may therefore replace: output markers and the check before any work.

cropmeta never deletes or overwrites what it did not write, and never an input. Every output
carries a marker saying which kind of cropmeta output it is:

==========================  =====================================================
output                      marker
==========================  =====================================================
folder (model, world, …)    ``.cropmeta-output.json`` inside: ``{"kind": …}``
region dataset (Zarr)       root attribute ``cropmeta_output``
GeoTIFF (maps)              dataset tag ``CROPMETA_OUTPUT``
GeoPackage                  layer metadata ``CROPMETA_OUTPUT``
PNG (map preview)           text chunk ``cropmeta-output``
a map's sidecars            named in the map's ``CROPMETA_FILES`` tag
==========================  =====================================================

:func:`claim` runs before a command does any work: an output path that is, contains or lies
inside one of the command's inputs is refused (even with ``overwrite``); an existing path that
is not a cropmeta output of the same kind is refused unless ``overwrite``; and the place must
be writable. Markers are read from metadata only (JSON, TIFF tags, GeoPackage metadata, PNG
text), so checking a path never executes anything it holds.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cropmeta.errors import InputError, missing_folders

MANIFEST = ".cropmeta-output.json"
TAG = "CROPMETA_OUTPUT"  # GeoTIFF tag and GeoPackage metadata key
FILES_TAG = "CROPMETA_FILES"  # a map's sidecars (JSON list of names)
ZARR_ATTR = "cropmeta_output"
PNG_KEY = "cropmeta-output"

#: Every kind of output, with the words errors use for it.
KINDS = {
    "world": "a synthetic world",
    "stac-items": "a provider-shaped STAC item collection",
    "region-dataset": "a region dataset",
    "region-datasets": "a folder of region datasets",
    "meta-model": "a meta-trained model",
    "adapted-model": "an adapted model",
    "checkpoints": "a checkpoint folder",
    "crop-map": "a crop map",
    "crop-map-layer": "a crop-map layer",
    "crop-map-fields": "a per-field crop map",
    "label-suggestions": "a label suggestion file",
    "evaluation": "an evaluation folder",
    "demo": "a demo folder",
    "preview": "a map preview",
}


def manifest(kind: str) -> dict:
    from cropmeta import __version__

    return {"kind": _known(kind), "written_by": f"cropmeta {__version__}"}


def mark_folder(folder: str | os.PathLike[str], kind: str) -> None:
    """Mark ``folder`` as a cropmeta output of ``kind``."""
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest(kind)) + "\n", encoding="utf-8")


def kind_of(path: str | os.PathLike[str]) -> str | None:
    """The kind of cropmeta output ``path`` is, from its marker; None when it carries none."""
    p = Path(path)
    try:
        if p.is_dir():
            return _folder_kind(p)
        suffix = p.suffix.lower()
        if suffix in (".tif", ".tiff"):
            return _tiff_kind(p)
        if suffix == ".gpkg":
            return _gpkg_kind(p)
        if suffix == ".png":
            return _png_kind(p)
    except (OSError, ValueError):  # unreadable or not what its name says: not ours
        return None
    return None


def _folder_kind(p: Path) -> str | None:
    for name, key in ((MANIFEST, "kind"), (".zattrs", ZARR_ATTR)):
        if (p / name).is_file():
            return json.loads((p / name).read_text(encoding="utf-8")).get(key)
    if (p / "zarr.json").is_file():
        return json.loads((p / "zarr.json").read_text("utf-8")).get("attributes", {}).get(ZARR_ATTR)
    return None


def _tiff_kind(p: Path) -> str | None:
    import rasterio

    with rasterio.open(p) as src:
        return src.tags().get(TAG)


def listed_files(p: Path) -> list[str]:
    """The sidecar names a crop map records in its ``CROPMETA_FILES`` tag."""
    import rasterio

    try:
        with rasterio.open(p) as src:
            return json.loads(src.tags().get(FILES_TAG, "[]"))
    except (OSError, ValueError):
        return []


def _gpkg_kind(p: Path) -> str | None:
    import pyogrio

    return (pyogrio.read_info(p).get("layer_metadata") or {}).get(TAG)


def _png_kind(p: Path) -> str | None:
    from PIL import Image

    with Image.open(p) as image:
        return getattr(image, "text", {}).get(PNG_KEY)


def _known(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    return kind


def _local(path: str | os.PathLike[str]) -> Path | None:
    text = os.fspath(path)
    return None if "://" in text or text.startswith("/vsi") else Path(text).expanduser().resolve()


def _relation(out: Path, given: Path) -> str | None:
    if out == given or (out.exists() and given.exists() and os.path.samefile(out, given)):
        return "is"
    if out in given.parents:
        return "contains"
    if given in out.parents:
        return "lies inside"
    return None


def _writable(out: Path) -> None:
    """Refuse before any work when nothing can be written at ``out``."""
    place = out.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise InputError(out, f"cannot write there: {place} is a file, not a folder")
    probes = [place] + ([out] if out.is_dir() else [])
    for folder in probes:
        try:
            fd, probe = tempfile.mkstemp(prefix=".cropmeta-probe-", dir=folder)
        except OSError as exc:
            raise InputError(out, f"cannot write there ({exc.strerror or exc})") from None
        os.close(fd)
        os.unlink(probe)


def claim(
    out: str | os.PathLike[str],
    kind: str,
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
    companions: Mapping[str | os.PathLike[str], str | None] | None = None,
    option: str = "--out",
    in_place: bool = False,
) -> None:
    """Check, before any work, that ``out`` (and its ``companions``) may be written.

    ``companions`` are the further files a run writes beside ``out`` (a map's legend and
    layers), each with its own kind, or None for a sidecar that cannot carry a marker and is
    recognised by being listed in ``out``'s ``CROPMETA_FILES`` tag. Raises :class:`InputError`
    naming the path: when it is, contains or lies inside an input (never allowed); when it
    exists and is not a cropmeta output of the same kind (allowed with ``overwrite``; an empty
    folder counts as free); when nothing can be written there. An ``in_place`` folder (an
    evaluation, the demo, several region datasets) is filled where it is and never replaced
    whole, so it may hold the inputs (a pipeline's world inside its evaluation folder).
    """
    out_path = Path(out)
    targets = {out_path: _known(kind)} | {Path(p): k for p, k in (companions or {}).items()}
    given = [(p, _local(p)) for p in inputs if p is not None]
    for target in targets:
        resolved = target.expanduser().resolve()
        for original, path in given:
            how = _relation(resolved, path) if path is not None else None
            if how and not (in_place and how == "contains" and target == out_path):
                raise InputError(
                    target,
                    f"{option} {how} an input ({os.fspath(original)}); "
                    "cropmeta never writes over its inputs",
                )
    listed = listed_files(out_path) if out_path.is_file() and kind == "crop-map" else []
    for target, want in targets.items():
        if overwrite or not (target.exists() or target.is_symlink()):
            continue
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            continue  # an empty folder holds nothing to lose
        have = kind_of(target) if want is not None else None
        if (want is not None and have == want) or (want is None and target.name in listed):
            continue
        what = KINDS[want] if want else f"a sidecar of {KINDS[kind]}"
        found = (
            f"is {KINDS[have]} written by cropmeta, not {what}"
            if have in KINDS
            else f"was not written by cropmeta as {what}"
        )
        raise InputError(target, f"exists and {found}; give --overwrite to replace it")
    _writable(out_path)


@contextmanager
def output_folder(out: str | os.PathLike[str], kind: str) -> Iterator[Path]:
    """A folder filled in place over a long run (an evaluation, the demo), marked as ``kind``.

    A run that fails with an error removes the folder when it created it, so bad input leaves
    nothing behind; an interrupted one (Ctrl-C) keeps it, so the run can resume.
    """
    folder = Path(out)
    created = missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mark_folder(folder, kind)
    try:
        yield folder
    except Exception:
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)
        raise
