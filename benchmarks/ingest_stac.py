"""Preprocessing speed of STAC items over HTTP against local per-date GeoTIFFs of the same data.

One region of the synthetic world (demo size by default) is written as earth-search items
(10/20/60 m COGs, overlapping tiles on some days, one in another UTM zone) together with the
per-date layout of the same pixels (``reference/``). ``preprocess_region`` turns each into a
region dataset of field series, in turns, ``--repeats`` times:

* ``per-date``: the local reference GeoTIFFs (the baseline);
* ``stac-local``: the items, assets read from disk through odc-stac;
* ``stac-http``: the items and assets served by a local HTTP server (range requests, as a
  cloud bucket serves COGs) in a process of its own (as a provider's server would not share
  the reader's interpreter; it does share the cores), read through GDAL's ``/vsicurl/``;
* ``stac-http, nearest``: the same with the 20 and 60 m bands resampled by nearest neighbour
  rather than bilinearly;
* ``stac-http, all through odc-stac``: the same as ``stac-http`` with every day warped by
  odc-stac, none read directly (:mod:`cropmeta.ingest.sources.stac_direct`): the reader before
  direct reads, for the gain in the same run.

Reported: fields per second (median over the repeats) and the ratio to ``per-date`` (target of
issue 19: ``stac-http`` ≥ 0.5×). The HTTP server is the tests' (``tests/http_server.py``, run
as a script).

Run: .venv/bin/python benchmarks/ingest_stac.py --scale demo --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cropmeta.catalog import RasterSpec, load_catalog  # noqa: E402
from cropmeta.ingest.preprocess import preprocess_region  # noqa: E402
from cropmeta.ingest.sources import stac  # noqa: E402
from cropmeta.synth import make_world  # noqa: E402
from cropmeta.synth.providers import write_provider_items  # noqa: E402


def timed(spec: RasterSpec | Path, labels: Path, column: str) -> tuple[float, int]:
    start = time.perf_counter()
    ds = preprocess_region(spec, labels, column, seed=0)
    return time.perf_counter() - start, ds.sizes["sample"]


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[list[str]]:
    """The tests' HTTP server serving ``root`` from a process of its own: [its URL], then
    [its URL, the bytes it sent] once stopped."""
    script = Path(__file__).parents[1] / "tests" / "http_server.py"
    server = subprocess.Popen(
        [sys.executable, str(script), str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert server.stdin is not None and server.stdout is not None
    state = [server.stdout.readline().strip()]
    try:
        yield state
    finally:
        server.stdin.close()
        state.append(server.stdout.readline().strip())
        server.wait(timeout=30)


@contextlib.contextmanager
def all_warped() -> Iterator[None]:
    """No day read directly: every one through odc-stac's cube."""
    on_grid = stac.days_on_grid
    stac.days_on_grid = lambda *_args: {}
    try:
        yield
    finally:
        stac.days_on_grid = on_grid


def remote(items: Path, url: str, repeat: int) -> str:
    """The items with every href under the server's URL, in a folder of their own per repeat
    (a link to the same files), so that no repeat reads from GDAL's cache of an earlier one."""
    folder = f"es{repeat}"
    (items.parent.parent / folder).symlink_to(items.parent, target_is_directory=True)
    doc = json.loads(items.read_text())
    for feature in doc["features"]:
        for asset in feature["assets"].values():
            asset["href"] = f"{url}{folder}/{asset['href']}"
    (items.parent / f"remote{repeat}.json").write_text(json.dumps(doc))
    return f"{url}{folder}/remote{repeat}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="demo", choices=["tiny", "demo", "bench"])
    parser.add_argument("--region", default="brandenburg")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = make_world(root / "world", seed=args.seed, regions=[args.region], scale=args.scale)
        entry = load_catalog(world).regions[0]
        labels, column = world.parent / entry.labels, entry.label_column
        items = write_provider_items(world, args.region, root / "served" / "es", "earth-search")
        with http_server(root / "served") as server:
            url = server[0]
            cases = {
                "per-date": lambda _r: items.parent / "reference",
                "stac-local": lambda _r: RasterSpec(layout="stac", path=str(items)),
                "stac-http": lambda r: RasterSpec(layout="stac", path=remote(items, url, r)),
                "stac-http, nearest": lambda r: RasterSpec(
                    layout="stac", path=remote(items, url, r + 100), resampling="nearest"
                ),
                "stac-http, all through odc-stac": lambda r: RasterSpec(
                    layout="stac", path=remote(items, url, r + 200)
                ),
            }
            seconds: dict[str, list[float]] = {name: [] for name in cases}
            fields = {}
            for r in range(args.repeats):
                for name, spec in cases.items():
                    odc_only = all_warped() if "odc-stac" in name else contextlib.nullcontext()
                    with odc_only:
                        took, fields[name] = timed(spec(r), labels, column)
                    seconds[name].append(took)
    base = statistics.median(seconds["per-date"])
    print(f"{args.region} ({args.scale}), {fields['per-date']} fields, {args.repeats} repeats")
    print("| source | median s | fields/s | ratio to per-date |")
    print("|---|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        rate = fields[name] / median
        print(f"| {name} | {median:.2f} | {rate:.0f} | {base / median:.2f}× |")
    print(f"HTTP: {int(server[1]) / 1e6:.1f} MB sent over {args.repeats} runs")


if __name__ == "__main__":
    main()
