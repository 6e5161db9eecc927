"""Progress bars (rich) and the one-line error contract of every command."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cropmeta.errors import InputError

console = Console(stderr=True)


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[..., None]]:
    """Yield ``update(done, total, metrics=None)`` driving one rich progress bar.

    ``metrics`` (e.g. meta-training's loss, acc and val_acc) are shown beside the bar as
    ``loss 1.234  acc 0.560  val acc 0.610``. The bar is drawn on a terminal only and cleared
    when done, so logs and error output stay clean (an error is then the only line a failing
    command prints).
    """
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None, info="")

        def update(done: int, total: int, metrics: dict | None = None) -> None:
            info = format_metrics(metrics or {})
            bar.update(task, completed=done, total=total, info=info)

        yield update


def format_metrics(metrics: dict[str, float]) -> str:
    """``{"loss": 1.2, "val_acc": 0.6}`` → ``loss 1.200  val acc 0.600``."""
    return "  ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in metrics.items())


def one_line_errors(func: Callable) -> Callable:
    """Turn an :class:`InputError` into ``error: FILE: PROBLEM`` on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            print(f"error: {exc.path}: {exc.problem}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper
