"""Crop-map throughput and memory on large synthetic tiles.

``throughput``: end-to-end pixels per second of ``map_region`` (read, mask, regularise,
standardise, classify, write the COG) on a SIZE × SIZE tile of 24 dates and 10 bands, next to
the model's own forward-pass throughput on pixels of the same tile already prepared in memory,
in the same run. The ratio says what share of the time the network gets (target ≥ 0.7).

``memory``: peak resident memory (VmHWM, reset after the imports) of a whole mapping run in
one process, each size in a fresh subprocess, on a SIZE tile and on a tile twice as wide (4×
the pixels); their ratio should stay ≤ 1.3.

The model is a TempCNN with the demo's preparation and classes and untrained (seeded) weights:
its cost per pixel does not depend on what it learned. Tiles are cached under ``--work``.

Run: .venv/bin/python benchmarks/map_throughput.py all --size 2048 --memory-size 1024
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cropmeta.catalog import RasterSpec
from cropmeta.ingest.prepare import Normaliser, Preparation, TemporalGrid
from cropmeta.ingest.sources import open_raster
from cropmeta.mapping.blocks import MapJob, context, predict_proba, prepare_block
from cropmeta.mapping.crop_map import map_region
from cropmeta.mapping.execute import default_workers
from cropmeta.models.bundle import BundleConfig, ClassInfo, build_model, save_bundle
from cropmeta.models.encoders import EncoderConfig
from cropmeta.synth.phenology import BANDS
from cropmeta.synth.world import make_world
from cropmeta.taxonomy import load_taxonomy

REGION = "nebraska"


def tiles(work: Path, size: int, seed: int) -> Path:
    """A SIZE × SIZE tile stack of the 'bench' world (24 dates), written once and reused."""
    folder = work / f"world-{size}-{seed}"
    if not (folder / "catalog.yaml").is_file():
        make_world(folder, seed=seed, regions=[REGION], tile_size=size, scale="bench")
    return folder / REGION / "tiles"


def bench_model(work: Path, tile_dir: Path, seed: int) -> Path:
    """An adapted-model bundle with the demo's preparation; its normaliser is fitted on the
    tile's first block (through the map stage's own preparation)."""
    out = work / f"model-{seed}"
    if (out / "config.json").is_file():
        return out
    torch.manual_seed(seed)
    taxonomy = load_taxonomy()
    prep = Preparation(bands=list(BANDS), grid=TemporalGrid(start_doy=60, end_doy=300, step=10))
    cfg = BundleConfig(
        kind="adapted",
        preparation=prep,
        normaliser=Normaliser(mean=[0.0] * len(BANDS), std=[1.0] * len(BANDS)),
        encoder=EncoderConfig(),
        classes=[
            ClassInfo(code=c.code, name=c.name, colour=c.colour) for c in taxonomy.classes[:7]
        ],
    )
    save_bundle(build_model(cfg), cfg, out)
    x, _ = prepare_block(_job(out, tile_dir, 256, 16384), 0)
    flat = x.reshape(-1, x.shape[-1]).numpy()
    cfg.normaliser = Normaliser(mean=flat.mean(0).tolist(), std=(flat.std(0) + 1e-6).tolist())
    save_bundle(build_model(cfg), cfg, out)
    context.cache_clear()  # the cached context holds the identity normaliser
    return out


def _job(model: Path, tile_dir: Path, block: int, batch: int) -> MapJob:
    s = open_raster(tile_dir)
    spec = RasterSpec(path=str(tile_dir.absolute()))
    return MapJob(str(model.absolute()), spec.model_dump_json(), s.width, s.height, block, batch)


def forward_throughput(model: Path, tile_dir: Path, blocks: int, batch: int, repeats: int) -> dict:
    """Pixels per second of the model alone (all cores, batches of ``batch``) on ``blocks``
    blocks of the tile prepared in memory beforehand; median over ``repeats``."""
    job = _job(model, tile_dir, 256, batch)
    step = max(1, job.n_blocks // blocks)
    x = torch.cat([prepare_block(job, i)[0] for i in range(0, job.n_blocks, step)[:blocks]])
    ctx = context(job)
    torch.set_num_threads(default_workers())
    predict_proba(ctx, x[:batch], batch)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_proba(ctx, x, batch)
        times.append(time.perf_counter() - t0)
    return {
        "pixels": len(x),
        "seconds": statistics.median(times),
        "px_per_s": len(x) / statistics.median(times),
    }


def end_to_end(model: Path, tile_dir: Path, out: Path, workers: int | None, **options) -> dict:
    t0 = time.perf_counter()
    result = map_region(model, tile_dir, out, workers=workers, **options)
    seconds = time.perf_counter() - t0
    job = _job(model, tile_dir, 256, 16384)
    return {
        "pixels": job.width * job.height,
        "seconds": seconds,
        "px_per_s": job.width * job.height / seconds,
        "blocks": result.blocks,
    }


def throughput(args: argparse.Namespace) -> None:
    work = Path(args.work)
    tile_dir = tiles(work, args.size, args.seed)
    model = bench_model(work, tile_dir, args.seed)
    workers = args.workers or default_workers()
    print(f"tile {args.size}×{args.size} px, 24 dates, {len(BANDS)} bands; {workers} workers")
    fwd = forward_throughput(model, tile_dir, args.forward_blocks, 16384, args.repeats)
    print(f"forward pass alone: {fwd['px_per_s']:,.0f} px/s ({fwd['pixels']:,} px in memory)")
    e2e = end_to_end(model, tile_dir, work / "map.tif", workers)
    print(f"end to end (map_region): {e2e['px_per_s']:,.0f} px/s ({e2e['seconds']:.1f} s)")
    fwd2 = forward_throughput(model, tile_dir, args.forward_blocks, 16384, args.repeats)
    base = statistics.median([fwd["px_per_s"], fwd2["px_per_s"]])
    print(f"forward pass alone, again: {fwd2['px_per_s']:,.0f} px/s")
    print(f"ratio end-to-end / forward pass: {e2e['px_per_s'] / base:.2f} (target ≥ 0.7)")


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc (``VmRSS`` now, ``VmHWM`` its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    tile_dir = tiles(work, args.size, args.seed)
    model = bench_model(work, tile_dir, args.seed)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak: measure the run alone
    start = _status_mib("VmRSS")
    e2e = end_to_end(model, tile_dir, work / f"map-{args.size}.tif", 1, block=args.block)
    peak = _status_mib("VmHWM")
    print(json.dumps({"size": args.size, "peak_mib": peak, "start_mib": start} | e2e))


def memory(args: argparse.Namespace) -> None:
    rows = []
    for size in (args.memory_size, 2 * args.memory_size):
        tiles(Path(args.work), size, args.seed)  # generated outside the measured process
        cmd = [
            sys.executable,
            __file__,
            "_child",
            "--size",
            str(size),
            "--work",
            args.work,
            "--seed",
            str(args.seed),
            "--block",
            str(args.block),
        ]
        rows.append(
            json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        )
        r = rows[-1]
        print(
            f"{size}×{size} px: peak {r['peak_mib']:.0f} MiB (after loading: "
            f"{r['start_mib']:.0f} MiB), {r['px_per_s']:,.0f} px/s in one process"
        )
    print(
        f"peak memory ratio, 4× the pixels: {rows[1]['peak_mib'] / rows[0]['peak_mib']:.2f} "
        "(target ≤ 1.3)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["throughput", "memory", "all", "_child"])
    parser.add_argument("--size", type=int, default=2048, help="throughput tile edge (px)")
    parser.add_argument("--memory-size", type=int, default=1024, help="smaller memory tile edge")
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.add_argument("--forward-blocks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default="/tmp/cropmeta-bench-map")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    np.random.seed(args.seed)
    if args.what == "_child":
        _child(args)
        return
    if args.what in ("throughput", "all"):
        throughput(args)
    if args.what in ("memory", "all"):
        memory(args)


if __name__ == "__main__":
    main()
