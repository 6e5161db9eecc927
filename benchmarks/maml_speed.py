"""Second-order MAML meta-training speed and memory: cropmeta vs `higher` vs a plain loop.

Same model (TempCNN, 10 bands × 25 steps, 64 filters per layer — the issue's reference step of
about 3.2 GFLOP per task; ``--hidden 32`` is cropmeta's default TempCNN), same tasks (5-way
5-shot, 15 queries per class, 5 inner steps, meta-batch 8) and the same number of threads for
every method. cropmeta runs with its defaults and with its memory options (``checkpoint``:
gradient-checkpointed inner steps; ``task_chunk``: the meta-batch backpropagated a few tasks at
a time).

Each method runs in its own fresh process, interleaved over repeats. Peak memory is the process's
peak resident memory during the meta-steps above its memory just before them; before that, every
process runs every method once on a tiny problem, so that one-off library loading (torch.func's
first use imports sympy; cropmeta's learner registry imports pandas; `higher`) is excluded from
every method alike (it is reported in the header). Also reports the model FLOPs of a meta-step
(torch.utils.flop_counter, counted on the plain loop; recomputation is not counted) per second as
a share of this machine's float32 matmul peak, measured in the same run with the same threads.

With more than one thread it also measures the ceiling that running work side by side can give
on this machine: the fastest one-core arrangements of the step (cropmeta's vmap over the
meta-batch, and the plain per-task loop) at one thread, times the number of threads. Every
method runs the same model's kernels, so a faster kernel would speed ``higher`` as much; what
the engine can add is spreading the tasks over the cores. Arms with a worker thread per core
(the plain loop; cropmeta checkpointed, whole or in chunks of 2) show how close to that ceiling
designs come whose memory can fit within higher's.

Setup (benchmark-only package): .venv/bin/pip install --no-deps higher
Run:   .venv/bin/python benchmarks/maml_speed.py --steps 3 --repeats 3
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F
from torch.func import functional_call

WAYS, SHOTS, QUERIES, INNER, BATCH, LR = 5, 5, 15, 5, 8, 0.1
N_STEPS, N_BANDS = 25, 10
#: TempCNN filters per layer: 64 gives the issue's reference step (~3.2 GFLOP per task)
HIDDEN = 64
#: cropmeta's arms: the learner settings besides the inner loop's
CROPMETA = {
    "cropmeta": {},
    "cropmeta, checkpoint": {"checkpoint": True},
    "cropmeta, task_chunk 4": {"task_chunk": 4},
    "cropmeta, checkpoint, task_chunk 4": {"checkpoint": True, "task_chunk": 4},
}


def setup(seed: int = 0, hidden: int = HIDDEN, n_steps: int = N_STEPS, tasks: int = BATCH):
    from cropmeta.models.classifier import CropClassifier
    from cropmeta.models.encoders import EncoderConfig
    from cropmeta.tasks.episodes import TaskBatch

    torch.manual_seed(seed)
    model = CropClassifier(N_BANDS, n_steps, EncoderConfig(hidden=hidden), n_classes=1)
    g = torch.Generator().manual_seed(seed)
    y_s = torch.arange(WAYS).repeat_interleave(SHOTS).repeat(tasks, 1)
    y_q = torch.arange(WAYS).repeat_interleave(QUERIES).repeat(tasks, 1)
    x_s = torch.randn(tasks, WAYS * SHOTS, n_steps, N_BANDS, generator=g)
    x_q = torch.randn(tasks, WAYS * QUERIES, n_steps, N_BANDS, generator=g)
    doy = torch.arange(60, 60 + 10 * n_steps, 10)
    return model, TaskBatch(x_s, y_s, x_q, y_q), doy


def step_cropmeta(model, batch, doy, options: dict | None = None):
    from cropmeta.learners.registry import build_learner

    learner = build_learner("maml", {"inner_steps": INNER, "inner_lr": LR, **(options or {})})
    learner.meta_backward(model, batch, doy)


def step_plain(model, batch, doy):
    from cropmeta.learners.inner_loop import expand_head

    params, ways, tasks = dict(model.named_parameters()), int(batch.y_s.max()) + 1, len(batch.x_s)
    for t in range(tasks):
        fast = expand_head(params, ways)
        for _ in range(INNER):
            loss = F.cross_entropy(functional_call(model, fast, (batch.x_s[t], doy)), batch.y_s[t])
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
            fast = {k: v - LR * g for (k, v), g in zip(fast.items(), grads, strict=True)}
        query = F.cross_entropy(functional_call(model, fast, (batch.x_q[t], doy)), batch.y_q[t])
        (query / tasks).backward()


def step_higher(model, batch, doy):
    """The same algorithm written with `higher`: its monkeypatched module and differentiable SGD.

    The fast weights start as the encoder's parameters plus the shared head row copied to the
    task's classes (the zero trick), so the meta-gradient equals the other methods'.
    """
    import higher

    ways, tasks = int(batch.y_s.max()) + 1, len(batch.x_s)
    task_model = _TaskModel(model, ways)
    fmodel = higher.monkeypatch(task_model, copy_initial_weights=True, track_higher_grads=True)
    inner_opt = torch.optim.SGD(task_model.parameters(), lr=LR)
    diffopt = higher.optim.get_diff_optim(
        inner_opt, task_model.parameters(), track_higher_grads=True
    )
    for t in range(tasks):
        params = [
            *model.encoder.parameters(),
            model.head.weight.expand(ways, -1),
            model.head.bias.expand(ways),
        ]
        for _ in range(INNER):
            loss = F.cross_entropy(fmodel(batch.x_s[t], doy, params=params), batch.y_s[t])
            params = diffopt.step(loss, params=params)
        query = F.cross_entropy(fmodel(batch.x_q[t], doy, params=params), batch.y_q[t])
        (query / tasks).backward()


class _TaskModel(torch.nn.Module):
    """The model's encoder with a task-sized head (its fast weights are supplied by `higher`)."""

    def __init__(self, model, ways: int) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.head = torch.nn.Linear(model.head.in_features, ways)

    def forward(self, x, doy):
        return self.head(self.encoder(x, doy))


def step_workers(model, batch, doy, workers: int, step=None):
    """``step`` (default: the plain loop) with the tasks dealt to ``workers`` threads, one
    core's thread each.

    Each worker runs ``step`` on its tasks with its own copy of the model (parameters swapped in
    by ``functional_call`` are module state, not thread-safe), so the plain loop keeps one
    task's graph per worker alive at a time. The copies' gradients are summed, weighted by their
    share of the tasks, in a fixed order: the same meta-gradient as one step over all tasks.
    """
    import copy
    from concurrent.futures import ThreadPoolExecutor

    shares = [list(range(w, len(batch.x_s), workers)) for w in range(workers)]
    copies = [copy.deepcopy(model) for _ in shares]
    with ThreadPoolExecutor(workers) as pool:  # a worker's error is raised here
        runs = [
            pool.submit(step or step_plain, m, _tasks(batch, ids), doy)
            for m, ids in zip(copies, shares, strict=True)
        ]
        for run in runs:
            run.result()
    for p, *grads in zip(model.parameters(), *(m.parameters() for m in copies), strict=True):
        if grads[0].grad is not None:
            total = sum(
                g.grad * len(ids) / len(batch.x_s) for g, ids in zip(grads, shares, strict=True)
            )
            p.grad = total if p.grad is None else p.grad + total


def _tasks(batch, ids: list[int]):
    from cropmeta.tasks.episodes import TaskBatch

    return TaskBatch(batch.x_s[ids], batch.y_s[ids], batch.x_q[ids], batch.y_q[ids])


def run_method(method: str, model, batch, doy, threads: int = 1) -> None:
    if method in CROPMETA:
        step_cropmeta(model, batch, doy, CROPMETA[method])
    elif method in WORKERS:
        step_workers(model, batch, doy, threads, WORKERS[method])
    else:
        {"higher": step_higher, "plain loop": step_plain}[method](model, batch, doy)


METHODS = [*CROPMETA, "higher", "plain loop"]
#: the ceiling's arms, run at one thread: the fastest one-core arrangements (vmap over the
#: meta-batch, a per-task loop)
ONE_CORE = ("cropmeta", "plain loop")
#: arms spread over the cores by threads (inter-op, not intra-op) whose memory can fit within
#: higher's: the plain loop (one task's graph per worker) and cropmeta checkpointed (one inner
#: step's graph, for the tasks of a worker or of its chunk)
WORKERS = {
    "plain loop, a worker per core": None,
    "cropmeta, checkpoint, a worker per core": partial(step_cropmeta, options={"checkpoint": True}),
    "cropmeta, checkpoint, task_chunk 2, a worker per core": partial(
        step_cropmeta, options={"checkpoint": True, "task_chunk": 2}
    ),
}
PLAIN_WORKERS = next(iter(WORKERS))


def _memory(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (peak) of this process, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def _reset_peak() -> int:
    """Start the peak-memory count afresh (Linux: clear_refs 5); return the memory now."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _memory("VmRSS")


def _run(method: str, steps: int, threads: int, hidden: int, queue) -> None:
    workers = threads
    if method in WORKERS:
        threads = 1  # each worker thread runs its ops on one core
    torch.set_num_threads(threads)
    start = _memory("VmRSS")
    tiny = setup(hidden=4, n_steps=3, tasks=2)  # every method's code loaded, in every process
    for other in (*METHODS, *WORKERS):
        run_method(other, *tiny, threads=workers)
    model, batch, doy = setup(hidden=hidden)
    base = _reset_peak()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        model.zero_grad()
        begin = time.perf_counter()
        run_method(method, model, batch, doy, threads=workers)
        times.append(time.perf_counter() - begin)
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    queue.put((times[1:], _memory("VmHWM") - base, base - start, grad.norm().item()))


def measure(
    method: str, steps: int, threads: int, hidden: int
) -> tuple[list[float], int, int, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(method, steps, threads, hidden, queue))
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


def step_flops(hidden: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model, batch, doy = setup(hidden=hidden)
    with FlopCounterMode(display=False) as counter:
        step_plain(model, batch, doy)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed meta-steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="TempCNN filters per layer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"second-order MAML, TempCNN ({args.hidden} filters), {WAYS}-way {SHOTS}-shot, "
        f"{QUERIES} queries/class, {INNER} inner steps, meta-batch {BATCH}; "
        f"torch {torch.__version__}, {args.threads} threads in every method"
    )
    flops, peak = step_flops(args.hidden), matmul_peak()
    print(
        f"model FLOPs per meta-step: {flops / 1e9:.2f} GFLOP ({flops / BATCH / 1e9:.2f} per "
        f"task); float32 matmul peak: {peak / 1e9:.1f} GFLOP/s"
    )
    arms = {m: (m, args.threads) for m in METHODS}
    if args.threads > 1:  # the ceiling that spreading work over the cores can give
        arms |= {f"{m}, 1 thread": (m, 1) for m in ONE_CORE} | {
            w: (w, args.threads) for w in WORKERS
        }
    rates, memory, loading, norms = {}, {}, [], {}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every method alike
        for arm, (method, threads) in arms.items():
            times, mem, load, norm = measure(method, args.steps, threads, args.hidden)
            rates.setdefault(arm, []).append(BATCH / statistics.median(times))
            memory.setdefault(arm, []).append(mem)
            loading.append(load)
            norms[arm] = norm
    print(f"one-off library loading before the meta-steps (excluded): +{_mib(loading):.0f} MiB")
    rate = {
        arm: statistics.median(r) / statistics.median(rates["higher"]) for arm, r in rates.items()
    }
    mem = {
        arm: statistics.median(m) / statistics.median(memory["higher"]) for arm, m in memory.items()
    }
    width = max(map(len, arms))
    for arm in arms:
        tasks = statistics.median(rates[arm])
        print(
            f"{arm:>{width}}: {tasks:6.2f} tasks/s ({rate[arm]:4.2f}x higher), peak memory "
            f"+{_mib(memory[arm]):4.0f} MiB ({mem[arm]:4.2f}x higher), "
            f"{flops / BATCH * tasks / peak:5.1%} of matmul peak, |meta-grad| {norms[arm]:.6f}"
        )
    if args.threads > 1:
        one_core = max(rate[f"{m}, 1 thread"] for m in ONE_CORE)
        print(
            f"ceiling from the cores: {args.threads} x the fastest one-core arm = "
            f"{args.threads * one_core:.2f}x higher (a worker per core reaches "
            f"{rate[PLAIN_WORKERS]:.2f}x at {mem[PLAIN_WORKERS]:.2f}x its memory)"
        )
    within = [a for a in rates if a.startswith("cropmeta") and mem[a] <= 1]
    if within:
        best = max(within, key=rate.get)
        print(f"cropmeta at no more memory than higher: {rate[best]:.2f}x ({best})")
    print(
        f"cropmeta / higher: {rate['cropmeta']:.2f}x tasks per second at "
        f"{mem['cropmeta']:.2f}x the peak memory"
    )


def _mib(values: list[int]) -> float:
    return statistics.median(values) / 2**20


if __name__ == "__main__":
    main()
