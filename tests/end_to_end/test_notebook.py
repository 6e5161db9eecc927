"""notebooks/quickstart.ipynb runs top to bottom in a fresh kernel of this interpreter, without
an error, and leaves its map and its evaluation report behind."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"

pytestmark = pytest.mark.slow  # the whole notebook in a fresh kernel


@pytest.fixture
def python3_kernel(tmp_path, monkeypatch):
    """A ``python3`` kernelspec that starts this interpreter, first on the Jupyter path, so the
    notebook runs in this environment whatever other kernels the machine has installed."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter" / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no user profile or startup
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    # one thread, as in-process tests: oversubscribed OpenMP threads slow torch tenfold
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_quickstart_runs(python3_kernel, tmp_path, monkeypatch):
    work = tmp_path / "run"
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(work))  # the notebook's tempfile.mkdtemp() lands here
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "stored outputs"
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, when one fails
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"]
    # the map of the first target and the report with its figures
    (root,) = work.glob("cropmeta-quickstart-*")
    assert (root / "map.tif").is_file()
    evaluation = root / "evaluation"
    assert (evaluation / "report.md").is_file() and (evaluation / "results.json").is_file()
    assert list((evaluation / "figures").glob("*.png"))
    displayed = {k for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {})}
    assert {"text/markdown", "image/png"} <= displayed
