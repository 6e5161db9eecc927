"""A meta-batch's tasks, evaluated together: :func:`torch.func.vmap` over the tasks when the
encoder allows it, a loop otherwise (LSTM); and the meta-batch cut into chunks of tasks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch.func import vmap
from torch.utils._pytree import tree_map

from cropmeta.models.classifier import CropClassifier
from cropmeta.tasks.episodes import TaskBatch


def over_tasks(
    model: CropClassifier, fn: Callable, batch: TaskBatch, *shared, per_task: tuple = ()
) -> tuple:
    """``fn(*shared, x_s, y_s, x_q, y_q, *per_task)`` for every task of ``batch``, stacked.

    ``per_task`` are further tensors with one entry per task (TIML: the task information).
    Uses :func:`vmap` when the encoder supports it, else a loop (same results).
    """
    tasks = (batch.x_s, batch.y_s, batch.x_q, batch.y_q, *per_task)
    return map_tasks(model, fn, (None,) * len(shared) + (0,) * len(tasks), *shared, *tasks)


def map_tasks(model: CropClassifier, fn: Callable, in_dims: tuple, *args) -> tuple:
    """``fn`` over the tasks of the ``args`` whose ``in_dims`` is 0 (None: shared), stacked.

    An argument may be a tensor or a tuple or dict of tensors. Uses :func:`vmap` when the
    encoder supports it, else a loop (same results).
    """
    if getattr(model.encoder, "supports_vmap", True):
        return vmap(fn, in_dims=in_dims)(*args)
    n = next(_leaves(a)[0].shape[0] for a, d in zip(args, in_dims, strict=True) if d == 0)
    outs = [fn(*(_task(a, d, i) for a, d in zip(args, in_dims, strict=True))) for i in range(n)]
    return tuple(_stack(list(o)) for o in zip(*outs, strict=True))


def _leaves(arg) -> tuple[torch.Tensor, ...]:
    if isinstance(arg, dict):
        return tuple(arg.values())
    return arg if isinstance(arg, tuple) else (arg,)


def _task(arg, dims, i: int):
    """Task ``i``'s part of ``arg`` (``dims``: None, shared; 0, stacked; or one per element)."""
    if dims is None:
        return arg
    if isinstance(dims, tuple):
        return tuple(_task(a, d, i) for a, d in zip(arg, dims, strict=True))
    if isinstance(arg, dict):
        return {k: v[i] for k, v in arg.items()}
    if isinstance(arg, tuple):
        return tuple(v[i] for v in arg)
    return arg[i]


def _stack(items: list):
    """Stack the per-task outputs (tensors, or tuples / dicts of them, nested) over tasks."""
    return tree_map(lambda *leaves: torch.stack(leaves), items[0], *items[1:])


def task_chunks(batch: TaskBatch, size: int) -> list[TaskBatch]:
    """``batch`` cut into consecutive batches of at most ``size`` tasks."""
    n = len(batch.x_s)
    return [
        dataclasses.replace(
            batch,
            **{
                f.name: value[i : i + size]
                for f in dataclasses.fields(batch)
                if torch.is_tensor(value := getattr(batch, f.name))
            },
        )
        for i in range(0, n, size)
    ]
