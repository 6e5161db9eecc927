"""What identifies a file's content: digests that say whether a file is the one recorded.

Two strengths: :func:`sha256` reads the whole file (model weights, small files that must be
exactly the ones recorded); :func:`signature` reads a bounded sample, so that signing the
hundreds of rasters a map reads costs little whatever their size (see its docstring for
exactly what it covers).
"""

from __future__ import annotations

import hashlib
import os

#: :func:`signature` hashes the file's first HEAD bytes and PIECES pieces of PIECE bytes.
HEAD = 64 * 1024
PIECES = 16
PIECE = 4 * 1024


def sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the whole file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sample_offsets(size: int) -> list[int]:
    """Where :func:`signature`'s pieces start in a file of ``size`` bytes: PIECES offsets
    evenly spaced from 0 to ``size - PIECE`` (both included, rounded down), so that the last
    piece ends at the end of the file; all 0 when the file is no longer than one piece."""
    last = max(0, size - PIECE)
    return [last * k // (PIECES - 1) for k in range(PIECES)]


def signature(path: str | os.PathLike[str]) -> dict[str, int | str]:
    """A cheap identity of a file's content: ``{"size", "mtime_ns", "sha256"}``.

    ``size`` and ``mtime_ns`` (modification time in nanoseconds) come from the open file's
    ``fstat``; ``sha256`` is the SHA-256 of, in this order, the file's first 64 KiB (HEAD) and
    16 pieces (PIECES) of 4 KiB (PIECE) read at the offsets :func:`sample_offsets` gives
    (evenly spaced from the start to the last 4 KiB; pieces shorter at the end of a small file
    are hashed as read). A file rewritten in place with other content almost always changes
    its time, size or one of these samples; a change confined to bytes outside the samples that
    keeps the size and restores the time is not seen (use :func:`sha256` where that matters).
    Reads at most 128 KiB. Raises :class:`OSError` when the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        h.update(f.read(HEAD))
        for offset in sample_offsets(st.st_size):
            f.seek(offset)
            h.update(f.read(PIECE))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}
