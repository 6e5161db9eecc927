"""Errors a user can act on, and atomic output paths.

Bad input must get a one-line answer naming the file and the problem; the CLI turns an
:class:`InputError` into that line and exit status 2. Outputs are written under a temporary
name and renamed when complete, so an output path never holds a partial result.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import yaml
from pydantic import ValidationError


class InputError(Exception):
    """A problem with an input file: ``path`` names the file, ``problem`` says what is wrong."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # survive pickling across worker processes
        return (InputError, (self.path, self.problem))


def require_exists(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise :class:`InputError` when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, f"{what} not found")
    return p


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its ancestors that do not exist yet, innermost first."""
    missing = []
    while not (path.exists() or path.is_symlink()) and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _unused(final: Path, what: str) -> Path:
    """A hidden sibling of ``final`` that does not exist (keeping ``final``'s suffix)."""
    while True:
        candidate = final.with_name(f".{final.name}.{what}-{secrets.token_hex(4)}{final.suffix}")
        if not (candidate.exists() or candidate.is_symlink()):
            return candidate


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it replaces ``path``.

    Works for files and directories (Zarr stores, model bundles). On any error the temporary
    output, and any folder made for it, is removed and ``path`` is left as it was. Whether
    ``path`` may be replaced is decided before any work, by :func:`cropmeta.ownership.claim`;
    a folder being replaced is first moved aside, so it is never half gone.
    """
    final = Path(path)
    made = missing_folders(final.parent)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _unused(final, "tmp")
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        for folder in made:  # innermost first; only if still empty
            with suppress(OSError):
                folder.rmdir()
        raise
    if final.is_dir() and not final.is_symlink():
        old = _unused(final, "old")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


def read_yaml(path: Path) -> dict:
    """A user's YAML file as a mapping; a missing file, bad YAML or another top level is an
    :class:`InputError`."""
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a YAML mapping at the top level")
    return data


def first_error(exc: ValidationError) -> str:
    """Pydantic's first complaint about a file's content, as one line."""
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    return f"invalid entry at {where}: {err['msg']}"
