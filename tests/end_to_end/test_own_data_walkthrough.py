"""docs/own-data.md runs as written: every ```bash block, in order, in a fresh folder, on the
synthetic world in earth-search's shape (STAC items over 10/20/60 m COGs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

DOC = Path(__file__).parents[2] / "docs" / "own-data.md"
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path):
    commands = [line for block in BLOCK.findall(DOC.read_text()) for line in block.splitlines()]
    commands = [c for c in commands if c.strip() and not c.lstrip().startswith("#")]
    assert len(commands) <= 10 and commands[0].startswith("cropmeta synth")
    bin_dir = str(Path(sys.executable).parent)  # this environment's cropmeta
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "OMP_NUM_THREADS": "1"}
    for command in commands:
        proc = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"

    provenance = json.loads(xr.open_zarr(tmp_path / "poltava.zarr").attrs["provenance"])
    assert provenance["raster"]["layout"] == "stac"
    assert provenance["raster"]["assets"]["B8A"] == ["nir08"]
    assert provenance["raster"]["assets"]["SCL"] == ["scl"]
    with rasterio.open(tmp_path / "poltava-map.tif") as src:
        classes = src.read(1)
        assert src.crs.to_epsg() == 32636 and src.res == (10.0, 10.0)
        assert np.any(classes != src.nodata)
