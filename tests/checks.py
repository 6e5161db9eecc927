"""Assertions shared by the test modules."""

from __future__ import annotations

from pathlib import Path


def assert_one_line_error(result, out: Path, fragment: str) -> None:
    """Exit status 2, exactly one ``error: FILE: PROBLEM`` line, and no (partial) output."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


def each(option: str, values) -> list:
    """``option`` before every value: a repeatable option given several times."""
    return [item for value in values for item in (option, value)]
