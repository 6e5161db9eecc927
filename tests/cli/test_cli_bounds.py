"""Every numeric option of every command refuses a bad number with one line (issue 17).

The options are read from the command line itself, so an option added later is covered (and
must declare its range, or the first test fails). For each one, values just outside its range,
NaN, infinities, a huge number and text are tried — an exhaustive table — and random values
outside the range are drawn with hypothesis: each must give exit status 2, exactly one line on
stderr naming the option, no traceback, and nothing new on disk.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cropmeta.cli.main import app

COMMAND = typer.main.get_command(app)
RUNNER = CliRunner()


def _kind(param) -> type | None:
    """int or float when the option takes numbers (alone, in a list or a pair), else None."""
    found = set()

    def walk(tp) -> None:
        if tp in (int, float):
            found.add(tp)
        for arg in typing.get_args(tp):
            walk(arg)

    walk(param.type_descriptor.annotation)
    return float if float in found else int if int in found else None


def numeric_options() -> list[tuple[str, object]]:
    return [
        (name, p)
        for name, cmd in sorted(COMMAND.commands.items())
        for p in cmd.params
        if p.opts and p.opts[0].startswith("--") and _kind(p) is not None
    ]


OPTIONS = numeric_options()
IDS = [f"{name} {p.opts[0]}" for name, p in OPTIONS]


def _valid(param) -> str:
    low = param.min if param.min is not None else 1
    return str(int(low) if _kind(param) is int else float(low))


def _required(cmd, skip: str) -> list[str]:
    """Values for the command's required options: paths that need not exist (parsing fails
    first) and numbers inside their range."""
    args: list[str] = []
    for p in cmd.params:
        if not p.required or p.name == skip or not p.opts:
            continue
        value = _valid(p) if _kind(p) is not None else f"in-{p.name}"
        args += [p.opts[0], *([value] * max(1, p.nargs))]
    return args


def bad_values(param) -> list[str]:
    kind = _kind(param)
    values = ["nan", "inf", "-inf", "abc", "", "1e999", "9" * 40]
    if kind is int:
        values += ["1.5", "1e9"]
    if param.min is not None:
        values.append(str(param.min - 1 if kind is int else param.min - max(1.0, abs(param.min))))
    if param.max is not None:
        values.append(str(param.max + 1 if kind is int else param.max * 2 + 1))
    return values


def _run(name: str, param, value: str, where: Path):
    cmd = COMMAND.commands[name]
    given = [value, *[_valid(param)] * (param.nargs - 1)]
    args = [name, *_required(cmd, param.name), param.opts[0], *given]
    before = sorted(where.rglob("*"))
    res = RUNNER.invoke(app, args, catch_exceptions=False)
    return res, before, sorted(where.rglob("*"))


def _assert_refused(res, before, after, option: str, value: str) -> None:
    assert res.exit_code == 2, (option, value, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, (option, value, res.stderr)
    assert lines[0].startswith(f"error: {option}: "), (option, value, lines[0])
    assert "Traceback" not in res.output
    assert after == before


def test_every_numeric_option_declares_its_range():
    assert len(OPTIONS) > 40  # the table below really covers the commands
    unbounded = [i for i, (_, p) in zip(IDS, OPTIONS, strict=True) if None in (p.min, p.max)]
    assert unbounded == []


@pytest.mark.parametrize(("name", "param"), OPTIONS, ids=IDS)
def test_bad_numbers_are_refused_with_one_line(name, param, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value in bad_values(param):
        res, before, after = _run(name, param, value, tmp_path)
        _assert_refused(res, before, after, param.opts[0], value)


def _outside(param) -> st.SearchStrategy[str]:
    """Numbers outside ``param``'s range, as text."""
    if _kind(param) is int:
        low = st.integers(max_value=param.min - 1)
        high = st.integers(min_value=param.max + 1)
    else:
        low = st.floats(max_value=param.min, exclude_max=True, allow_nan=False)
        high = st.floats(min_value=param.max, exclude_min=True, allow_nan=False)
    return st.one_of(low, high).map(repr).map(lambda s: s.replace("'", ""))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_numbers_outside_the_range_are_refused(data, tmp_path_factory):
    name, param = data.draw(st.sampled_from(OPTIONS), label="option")
    value = data.draw(_outside(param), label="value")
    assert not math.isnan(float(value))
    where = tmp_path_factory.mktemp("bounds")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        res, before, after = _run(name, param, value, where)
    _assert_refused(res, before, after, param.opts[0], value)
