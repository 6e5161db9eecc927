"""Progress bars (rich) for long work, shared by the Python API's long runs and the CLI.

One console on stderr: bars are drawn on a terminal only and cleared when done, so logs and
error output stay clean (an error is then the only line a failing command prints).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
