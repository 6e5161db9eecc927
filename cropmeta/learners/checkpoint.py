"""Resumable meta-training: checkpoints of everything the rest of a run depends on.

A checkpoint is a pair of files in the run's checkpoint folder (``<out>.checkpoints`` beside the
model folder): ``ckpt-NNNNNNN.safetensors`` holds tensors — model and learner weights, the Adam
moments, the best-validated weights so far, the torch RNG state — and ``ckpt-NNNNNNN.json`` the
rest — iteration, the run's fingerprint (config, seed, regions), Adam's and the LR schedule's
settings, the task sampler's RNG state, history and early-stopping counters. Nothing is pickled:
the optimiser's state dict is flattened into tensors plus JSON and rebuilt on loading.

Each file is written under a temporary name, synced and renamed; the JSON goes last, so it marks
a complete checkpoint, and older checkpoints are deleted only after it: a run killed at any
moment leaves the previous checkpoint or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cropmeta.errors import InputError
from cropmeta.learners.base import Learner
from cropmeta.ownership import mark_folder

FORMAT = "cropmeta-checkpoint/1"
Tensors = dict[str, torch.Tensor]


def new_history() -> dict[str, list]:
    keys = ("iteration", "loss", "acc", "val_iteration", "val_acc", "val_seconds")
    return {key: [] for key in keys}


@dataclass
class LoopState:
    """Where the training loop stands: progress, history and best-of-validation bookkeeping."""

    iteration: int = 0
    history: dict[str, list] = field(default_factory=new_history)
    best_acc: float = -1.0
    best: Tensors = field(default_factory=dict)
    since_best: int = 0
    stopped: bool = False
    seconds: float = 0.0


@dataclass
class Trainee:
    """The objects a checkpoint saves and restores (in place)."""

    model: torch.nn.Module
    learner: Learner
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    sampler_rng: np.random.Generator


def checkpoint_folder(out: str | Path) -> Path:
    """Default checkpoint folder of a run writing the model folder ``out``."""
    out = Path(out)
    return out.with_name(f"{out.name}.checkpoints")


def snapshot(model: torch.nn.Module, learner: Learner) -> Tensors:
    """Detached copies of the model's (``model.*``) and the learner's (``learner.*``) tensors."""
    out = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    out |= {f"learner.{k}": v.detach().clone() for k, v in learner.state.state_dict().items()}
    return out


def restore(model: torch.nn.Module, learner: Learner, tensors: Tensors) -> None:
    """Load a :func:`snapshot` (or a checkpoint's tensors with that naming) into place."""
    for prefix, module in (("model.", model), ("learner.", learner.state)):
        part = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(part)


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[Tensors, dict]:
    """A state dict as tensors (``optim.<param>.<key>``) plus JSON (settings, scalar state)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: Tensors, record: dict) -> dict:
    state: dict[int, dict] = defaultdict(dict)
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state[int(idx)][key] = value
    for name, value in record["scalars"].items():
        idx, key = name.split(".", 1)
        state[int(idx)][key] = value
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in record["param_groups"]
    ]
    return {"state": dict(state), "param_groups": groups}


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(folder: Path, fingerprint: dict, t: Trainee, loop: LoopState) -> Path:
    """Write the checkpoint of ``loop.iteration``, then delete older ones; returns its JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    mark_folder(folder, "checkpoints")
    stem = folder / f"ckpt-{loop.iteration:07d}"
    optim_tensors, optim_record = _flatten_optimizer(t.opt)
    tensors = snapshot(t.model, t.learner) | optim_tensors | {"rng.torch": torch.get_rng_state()}
    tensors |= {f"best.{k}": v for k, v in loop.best.items()}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    record = {
        "format": FORMAT,
        "iteration": loop.iteration,
        "fingerprint": fingerprint,
        "loop": {k: getattr(loop, k) for k in ("history", "best_acc", "since_best", "stopped")},
        "seconds": loop.seconds,
        "sampler_rng": t.sampler_rng.bit_generator.state,
        "optimizer": optim_record,
        "scheduler": t.sched.state_dict(),
    }
    _write_atomic(stem.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p)))
    _write_atomic(stem.with_suffix(".json"), lambda p: p.write_text(json.dumps(record, indent=1)))
    for old in folder.glob("ckpt-*"):
        if old.stem != stem.name:
            old.unlink(missing_ok=True)
    return stem.with_suffix(".json")


def clear_checkpoints(folder: Path) -> None:
    """Delete the checkpoints in ``folder`` (a fresh run must not leave an older one to resume)."""
    for old in folder.glob("ckpt-*"):
        old.unlink(missing_ok=True)


def _differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, as ``key saved → now``."""
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {json.dumps(a)} → {json.dumps(b)}")
    return out


def latest_checkpoint(folder: Path) -> Path | None:
    """The JSON of the newest complete checkpoint in ``folder``, if any."""
    done = [p for p in folder.glob("ckpt-*.json") if p.with_suffix(".safetensors").is_file()]
    return max(done, default=None)


def load_checkpoint(folder: Path, fingerprint: dict, t: Trainee, loop: LoopState) -> bool:
    """Restore the newest checkpoint into ``t`` and ``loop``; False when there is none.

    A checkpoint of another run (different config, seed or regions) is refused: resuming it
    would silently continue a different experiment.
    """
    path = latest_checkpoint(folder)
    if path is None:
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(path, "not a cropmeta checkpoint")
    if diffs := _differences(record["fingerprint"], fingerprint):
        raise InputError(
            path,
            f"checkpoint of another run ({'; '.join(diffs[:3])}): "
            "delete the folder or run without --resume",
        )
    try:
        tensors = load_file(str(path.with_suffix(".safetensors")))
        restore(t.model, t.learner, tensors)
        t.opt.load_state_dict(_unflatten_optimizer(tensors, record["optimizer"]))
        t.sched.load_state_dict(record["scheduler"])
        t.sampler_rng.bit_generator.state = record["sampler_rng"]
        torch.set_rng_state(tensors["rng.torch"])
    except Exception as exc:  # SafetensorError, shape mismatches, missing keys
        raise InputError(path, f"damaged checkpoint ({str(exc)[:80]})") from None
    device = next(t.model.parameters()).device
    loop.best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    loop.iteration, loop.seconds = record["iteration"], record["seconds"]
    for key, value in record["loop"].items():
        setattr(loop, key, value)
    return True
