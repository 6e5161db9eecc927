"""Where meta-training runs: the device, and a group of processes sharing each meta-batch.

Launched with ``torchrun --nproc_per_node N -m cropmeta meta-train ...``, every process draws the
same meta-batch (same seed, same sampler), takes its contiguous slice of the tasks, computes the
outer gradient of its slice with the learner's own :meth:`Learner.meta_backward`, and the
gradients of the model and of ``learner.state`` are all-reduced into the full meta-batch's mean
(each rank weighted by its share of the tasks). Every rank then takes the same Adam step, so the
weights stay identical everywhere, as under DistributedDataParallel; only rank 0 writes outputs.

Why not wrap the model in :class:`~torch.nn.parallel.DistributedDataParallel`: DDP reduces
gradients from autograd hooks armed by the wrapper's ``forward``. The learners never call it —
they evaluate the model functionally (``functional_call`` under ``vmap`` and ``torch.func.grad``),
Reptile writes ``.grad`` without any backward pass, and Meta-SGD's learning rates live in
``learner.state``, outside the module. Reducing ``.grad`` after ``meta_backward`` (one flat
buffer per step) is the same averaging, and works for every learner.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cropmeta.errors import InputError
from cropmeta.learners.base import Learner
from cropmeta.models.classifier import CropClassifier
from cropmeta.tasks.episodes import TaskBatch


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group (a single process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items (sizes differ by at most one)."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available) as a usable device."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise InputError("--device", f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device", f"{name} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError("--device", f"{name}: only {torch.cuda.device_count()} GPU(s)")
    return device


@contextmanager
def process_group(device: torch.device) -> Iterator[tuple[Ranks, torch.device]]:
    """This process's :class:`Ranks` and device.

    Joins a group already initialised by the caller, or the one ``torchrun`` describes in the
    environment (``WORLD_SIZE`` > 1; gloo on CPU, NCCL on GPU, one GPU per local rank) and
    leaves it afterwards; otherwise a single process.
    """
    created = False
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    ranks = Ranks(dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else Ranks()
    if device.type == "cuda" and ranks.world > 1 and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    try:
        yield ranks, device
    finally:
        if created:
            dist.destroy_process_group()


def check_split(meta_batch: int, ranks: Ranks) -> None:
    """Every rank needs at least one task of each meta-batch (checked on all ranks alike)."""
    if meta_batch < ranks.world:
        raise InputError(
            "--meta-batch", f"{meta_batch} tasks cannot be split over {ranks.world} processes"
        )


def _map_tensors(batch: TaskBatch, fn: Callable[[torch.Tensor], torch.Tensor]) -> TaskBatch:
    """``batch`` with ``fn`` applied to each of its tensors (optional fields left as None)."""
    changes = {
        f.name: fn(value)
        for f in dataclasses.fields(batch)
        if torch.is_tensor(value := getattr(batch, f.name))
    }
    return dataclasses.replace(batch, **changes)


def task_slice(batch: TaskBatch, ranks: Ranks, device: torch.device) -> tuple[TaskBatch, float]:
    """This rank's tasks of ``batch`` on ``device``, and their share of the meta-batch."""
    n = batch.x_s.shape[0]
    part = ranks.share(n)
    return _map_tensors(batch, lambda t: t[part].to(device)), (part.stop - part.start) / n


def _sum_over_ranks(tensors: list[torch.Tensor], ranks: Ranks) -> list[torch.Tensor]:
    """Element-wise sums over all ranks, through one flat buffer."""
    if ranks.world == 1:
        return tensors
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    return list(flat.split([t.numel() for t in tensors]))


def broadcast_parameters(params: list[torch.Tensor], ranks: Ranks) -> None:
    """Copy rank 0's values to every rank (as DDP does at construction)."""
    if ranks.world > 1:
        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=0)


def meta_backward(
    learner: Learner, model: CropClassifier, batch: TaskBatch, doy: torch.Tensor, ranks: Ranks
) -> tuple[float, float]:
    """The learner's outer gradient of the whole meta-batch in ``.grad``, split over ranks.

    ``batch`` is the full meta-batch (on the CPU; this rank's slice moves to ``doy``'s device,
    the model's). Returns the meta-batch's mean query loss and accuracy, the same on every rank.
    Parameters without a gradient (ProtoNet's unused head) stay without one on every rank: the
    learner decides that alike everywhere.
    """
    part, weight = task_slice(batch, ranks, doy.device)
    loss, acc = learner.meta_backward(model, part, doy)
    if ranks.world == 1:
        return loss, acc
    params = [p for p in (*model.parameters(), *learner.state.parameters()) if p.grad is not None]
    grads = [p.grad * weight for p in params]
    scalars = torch.tensor([loss, acc], dtype=grads[0].dtype, device=grads[0].device) * weight
    *summed, totals = _sum_over_ranks([*grads, scalars], ranks)
    for p, g in zip(params, summed, strict=True):
        p.grad.copy_(g.view_as(p.grad))
    return totals[0].item(), totals[1].item()


@torch.no_grad()
def mean_accuracy(
    learner: Learner, model: CropClassifier, batch: TaskBatch, doy: torch.Tensor, ranks: Ranks
) -> float:
    """Query accuracy over the tasks of ``batch`` (each rank scores its slice, without a graph:
    the learners' inner loops take their own gradients with ``torch.func``)."""
    part, weight = task_slice(batch, ranks, doy.device)
    acc = learner.meta_loss(model, part, doy)[1].item() * weight if weight else 0.0
    total = torch.tensor([acc], dtype=torch.float64, device=doy.device)
    return _sum_over_ranks([total], ranks)[0].item()
