"""Logging and the one-line error contract of every command (bars: :mod:`cropmeta.progress`).

Every failure a user can fix ends the same way: ``error: WHAT: PROBLEM`` as the only line on
stderr and exit status 2, where WHAT is the file or the option at fault. Files' problems come
as :class:`InputError` (:func:`one_line_errors`), options' problems from the option parser
(:class:`OneLineErrors`, instead of its multi-line usage box).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable

import typer
from pydantic import ValidationError
from rich.logging import RichHandler

from cropmeta.errors import InputError
from cropmeta.progress import console

try:  # typer ≥ 0.20 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors
from typer.core import TyperGroup


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )


def one_line_errors(func: Callable) -> Callable:
    """Turn an :class:`InputError` into ``error: FILE: PROBLEM`` on stderr and exit status 2
    (and a setting refused by a typed config into ``error: SETTING: PROBLEM``)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            fail(exc.path, exc.problem)
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(".".join(str(x) for x in first["loc"]) or exc.title, first["msg"])

    return wrapper


def fail(what: str, problem: str) -> None:
    """Print the one line ``error: WHAT: PROBLEM`` and exit with status 2."""
    print(f"error: {what}: {' '.join(problem.split())}", file=sys.stderr)
    raise typer.Exit(2)


class OneLineErrors(TyperGroup):
    """The command group, with the option parser's errors in the one-line form: an invalid or
    missing option is ``error: --OPTION: PROBLEM``, exit status 2."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as exc:  # `cropmeta` alone: the help
            exc.show()
            code = 0
        except click_errors.ClickException as exc:
            bad_value = isinstance(exc, click_errors.BadParameter) and exc.message
            problem = exc.message if bad_value else exc.format_message()
            problem = problem.removeprefix("Value error, ")  # typer's wording of a bad choice
            print(f"error: {_what(exc)}: {' '.join(problem.split())}", file=sys.stderr)
            code = 2
        except typer.Abort:
            print("error: aborted", file=sys.stderr)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code or 0)


def _what(exc: Exception) -> str:
    """The option a parser error is about, else the command."""
    param = getattr(exc, "param", None)
    if param is not None and getattr(param, "opts", None):
        return max(param.opts, key=len)
    hint = getattr(exc, "param_hint", None)
    if isinstance(hint, str) and hint:
        return hint.strip("'\"")
    ctx = getattr(exc, "ctx", None)
    return ctx.command_path if ctx is not None else "cropmeta"
