"""The house's shape (issue 20): stages import only downward, no import cycles, a public face."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the package under ``root``, in its own process (it reconfigures
    logging) and without its cache."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
    )


def test_import_contracts_hold():
    """import-linter's contracts in pyproject.toml: the pipeline's layers and no cycles."""
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]


def test_a_broken_layer_is_caught(tmp_path):
    """The contract can fail: a copy of the package whose models import the adapt stage."""
    shutil.copytree(
        ROOT / "cropmeta", tmp_path / "cropmeta", ignore=shutil.ignore_patterns("*.pyc")
    )
    (tmp_path / "cropmeta" / "models" / "bad.py").write_text("import cropmeta.adapt.adapt\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "cropmeta.models.bad -> cropmeta.adapt.adapt" in done.stdout


def test_public_face_is_light_and_complete():
    """``import cropmeta`` loads no stage (no torch); every name in ``__all__`` resolves."""
    code = (
        "import sys, cropmeta; assert 'torch' not in sys.modules, 'torch imported'; "
        "[getattr(cropmeta, n) for n in cropmeta.__all__]; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
    import cropmeta

    assert cropmeta.adapt_region.__module__ == "cropmeta.adapt.adapt"
    with pytest.raises(AttributeError):
        cropmeta.no_such_stage  # noqa: B018
