"""Second-order MAML meta-training speed and memory: cropmeta vs `higher` vs a plain loop.

Same model (TempCNN, default config, 10 bands × 25 steps), same tasks (5-way 5-shot, 15 queries
per class, 5 inner steps, meta-batch 8), each method in its own fresh process so that peak
memory (max RSS above the process's memory before the first step) is its own. Also reports the
step's model FLOPs (torch.utils.flop_counter, counted on the plain loop) per second as a share of
this machine's float32 matmul peak, measured in the same run.

Setup (benchmark-only package): .venv/bin/pip install --no-deps higher
Run:   .venv/bin/python benchmarks/maml_speed.py --steps 6 --repeats 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call

WAYS, SHOTS, QUERIES, INNER, BATCH, LR = 5, 5, 15, 5, 8, 0.1
N_STEPS, N_BANDS = 25, 10


def setup(seed: int = 0):
    from cropmeta.models.classifier import CropClassifier
    from cropmeta.models.encoders import EncoderConfig
    from cropmeta.tasks.episodes import TaskBatch

    torch.manual_seed(seed)
    model = CropClassifier(N_BANDS, N_STEPS, EncoderConfig(), n_classes=1)
    g = torch.Generator().manual_seed(seed)
    y_s = torch.arange(WAYS).repeat_interleave(SHOTS).repeat(BATCH, 1)
    y_q = torch.arange(WAYS).repeat_interleave(QUERIES).repeat(BATCH, 1)
    x_s = torch.randn(BATCH, WAYS * SHOTS, N_STEPS, N_BANDS, generator=g)
    x_q = torch.randn(BATCH, WAYS * QUERIES, N_STEPS, N_BANDS, generator=g)
    doy = torch.arange(60, 60 + 10 * N_STEPS, 10)
    return model, TaskBatch(x_s, y_s, x_q, y_q), doy


def step_cropmeta(model, batch, doy):
    from cropmeta.learners.registry import build_learner

    learner = build_learner("maml", {"inner_steps": INNER, "inner_lr": LR})
    loss, _ = learner.meta_loss(model, batch, doy)
    loss.backward()


def step_plain(model, batch, doy):
    from cropmeta.learners.base import expand_head

    params = dict(model.named_parameters())
    for t in range(BATCH):
        fast = expand_head(params, WAYS)
        for _ in range(INNER):
            loss = F.cross_entropy(functional_call(model, fast, (batch.x_s[t], doy)), batch.y_s[t])
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
            fast = {k: v - LR * g for (k, v), g in zip(fast.items(), grads, strict=True)}
        query = F.cross_entropy(functional_call(model, fast, (batch.x_q[t], doy)), batch.y_q[t])
        (query / BATCH).backward()


def step_higher(model, batch, doy):
    """The same algorithm written with `higher`: its monkeypatched module and differentiable SGD.

    The fast weights start as the encoder's parameters plus the shared head row copied to the
    task's classes (the zero trick), so the meta-gradient equals the other two methods'.
    """
    import higher

    task_model = _TaskModel(model, WAYS)
    fmodel = higher.monkeypatch(task_model, copy_initial_weights=True, track_higher_grads=True)
    inner_opt = torch.optim.SGD(task_model.parameters(), lr=LR)
    diffopt = higher.optim.get_diff_optim(
        inner_opt, task_model.parameters(), track_higher_grads=True
    )
    for t in range(BATCH):
        params = [
            *model.encoder.parameters(),
            model.head.weight.expand(WAYS, -1),
            model.head.bias.expand(WAYS),
        ]
        for _ in range(INNER):
            loss = F.cross_entropy(fmodel(batch.x_s[t], doy, params=params), batch.y_s[t])
            params = diffopt.step(loss, params=params)
        query = F.cross_entropy(fmodel(batch.x_q[t], doy, params=params), batch.y_q[t])
        (query / BATCH).backward()


class _TaskModel(torch.nn.Module):
    """The model's encoder with a task-sized head (its fast weights are supplied by `higher`)."""

    def __init__(self, model, ways: int) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.head = torch.nn.Linear(model.head.in_features, ways)

    def forward(self, x, doy):
        return self.head(self.encoder(x, doy))


METHODS = {"cropmeta": step_cropmeta, "higher": step_higher, "plain loop": step_plain}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _run(method: str, steps: int, queue) -> None:
    torch.set_num_threads(torch.get_num_threads())
    model, batch, doy = setup()
    base = _rss_bytes()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        model.zero_grad()
        start = time.perf_counter()
        METHODS[method](model, batch, doy)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    queue.put((times[1:], peak - base, grad.norm().item()))


def measure(method: str, steps: int) -> tuple[list[float], int, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(method, steps, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_flops() -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model, batch, doy = setup()
    with FlopCounterMode(display=False) as counter:
        step_plain(model, batch, doy)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed meta-steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"second-order MAML, TempCNN, {WAYS}-way {SHOTS}-shot, {QUERIES} queries/class, "
        f"{INNER} inner steps, meta-batch {BATCH}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    flops, peak = step_flops(), matmul_peak()
    print(
        f"model FLOPs per meta-step: {flops / 1e9:.2f} GFLOP ({flops / BATCH / 1e9:.2f} per "
        f"task); float32 matmul peak: {peak / 1e9:.1f} GFLOP/s"
    )
    rates, memory, norms = {}, {}, {}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every method alike
        for method in METHODS:
            times, mem, norm = measure(method, args.steps)
            rates.setdefault(method, []).append(BATCH / statistics.median(times))
            memory.setdefault(method, []).append(mem)
            norms[method] = norm
    for method in METHODS:
        rate = statistics.median(rates[method])
        mem = statistics.median(memory[method]) / 2**20
        share = flops / BATCH * rate / peak
        print(
            f"{method:>11}: {rate:6.2f} tasks/s (median of {args.repeats}), peak memory "
            f"+{mem:6.0f} MiB, {share:5.1%} of matmul peak, |meta-grad| {norms[method]:.6f}"
        )
    ratio = statistics.median(rates["cropmeta"]) / statistics.median(rates["higher"])
    mem_ratio = statistics.median(memory["cropmeta"]) / statistics.median(memory["higher"])
    print(f"cropmeta / higher: {ratio:.2f}x tasks per second at {mem_ratio:.2f}x the peak memory")


if __name__ == "__main__":
    main()
