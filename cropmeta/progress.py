"""Progress of long work, shared by the Python API's long runs and the CLI.

One console on stderr. On a terminal a rich progress bar, cleared when done; without one (a log
file, CI, a notebook's captured output) a plain line every :data:`LINE_EVERY` seconds, so a
five-minute run is not five silent minutes, and none for work that ends sooner, so a quick
command's only stderr line is still an error's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
#: seconds between progress lines when stderr is not a terminal
LINE_EVERY = 30.0


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[..., None]]:
    """Yield ``update(done, total, metrics=None)`` driving one rich progress bar, or progress
    lines without a terminal (:func:`progress_lines`).

    ``metrics`` (e.g. meta-training's loss, acc and val_acc) are shown beside the bar as
    ``loss 1.234  acc 0.560  val acc 0.610``.
    """
    if not console.is_terminal:
        yield progress_lines(description)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None, info="")

        def update(done: int, total: int, metrics: dict | None = None) -> None:
            info = format_metrics(metrics or {})
            bar.update(task, completed=done, total=total, info=info)

        yield update


def format_metrics(metrics: dict[str, float]) -> str:
    """``{"loss": 1.2, "val_acc": 0.6}`` → ``loss 1.200  val acc 0.600``."""
    return "  ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in metrics.items())


def progress_lines(
    description: str,
    every: float = LINE_EVERY,
    clock: Callable[[], float] = time.monotonic,
    write: Callable[[str], None] | None = None,
) -> Callable[..., None]:
    """``update(done, total, metrics=None)`` writing ``description: done/total (p %), elapsed,
    ~left  metrics`` at most every ``every`` seconds — the first after ``every`` seconds, and
    a last one when work that wrote lines completes."""
    write = write or _plain_line
    start = clock()
    last: float | None = None  # when the last line was written
    closed = False  # the work completed: nothing more to say until more work starts

    def update(done: int, total: int, metrics: dict | None = None) -> None:
        nonlocal last, closed
        now = clock()
        finished = bool(total) and done >= total
        closed = closed and finished  # a next phase (evaluate: preprocess, train, adapt) reopens
        due = now - (start if last is None else last) >= every
        if closed or not (due or (finished and last is not None)):
            closed = closed or finished
            return
        last, closed = now, finished
        elapsed = now - start
        line = (
            f"{description}: {done}/{total} ({100 * done / total:.0f} %)"
            if total
            else (f"{description}: {done}")
        )
        line += f", {timedelta(seconds=round(elapsed))} elapsed"
        if total and 0 < done < total:
            line += f", ~{timedelta(seconds=round(elapsed * (total - done) / done))} left"
        if metrics:
            line += "  " + format_metrics(metrics)
        write(line)

    return update


def _plain_line(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)
