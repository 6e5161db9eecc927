"""Errors a user can act on, and atomic output paths.

Bad input must get a one-line answer naming the file and the problem; the CLI turns an
:class:`InputError` into that line and exit status 2. Outputs are written under a temporary
name and renamed when complete, so an output path never holds a partial result.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it to ``path``.

    Works for files and directories (Zarr stores, model bundles). On any error the
    temporary output is removed and ``path`` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}{final.suffix}")  # keeps the type
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if final.exists():
        _remove(final)
    os.replace(tmp, final)
