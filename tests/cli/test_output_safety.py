"""cropmeta never deletes or overwrites what it did not write, and never an input (issue 17).

Each data-loss case a user met is run against copies of real inputs: the command must refuse
with one line before any work, and every input must keep its bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import rasterio
from checks import assert_one_line_error, each

from cropmeta.ownership import kind_of


def _digest(path: Path) -> str:
    """One hash over every file under ``path`` (or of the file), names included."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _refused(res, out: Path, fragment: str, before: str) -> None:
    """One line naming the problem, exit 2, and ``out`` (an input) exactly as it was."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.stderr
    assert _digest(out) == before
    assert not list(out.parent.glob(f".{out.name}.tmp-*"))


@pytest.fixture()
def target(world, catalog, tmp_path) -> dict[str, Path]:
    """A copy of the first target region's tiles and fields, which a test may try to destroy."""
    entry = catalog.targets()[0]
    tiles = tmp_path / "region" / "tiles"
    shutil.copytree(catalog.path(entry.tiles), tiles)
    fields = tmp_path / "region" / "fields.gpkg"
    shutil.copy(catalog.path(entry.labels), fields)
    return {"tiles": tiles, "fields": fields, "column": entry.label_column}


@pytest.fixture()
def own_copy(tmp_path):
    def copy(folder: Path, name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(folder, dest)
        return dest

    return copy


def _preprocess(cli, target, out, *extra):
    return cli(
        "preprocess",
        "--tiles",
        target["tiles"],
        "--labels",
        target["fields"],
        "--label-column",
        target["column"],
        "--out",
        out,
        *extra,
    )


# --- the eight data-loss cases of the issue -------------------------------------------------


@pytest.mark.parametrize("extra", [(), ("--overwrite",)])
def test_preprocess_out_is_its_labels_file(cli, target, extra):
    before = _digest(target["fields"])
    res = _preprocess(cli, target, target["fields"], *extra)
    _refused(res, target["fields"], "--out is an input", before)


def test_preprocess_out_is_its_tiles_folder(cli, target):
    before = _digest(target["tiles"])
    res = _preprocess(cli, target, target["tiles"], "--overwrite")
    _refused(res, target["tiles"], "--out is an input", before)
    assert len(list(target["tiles"].glob("*.tif"))) > 2


def test_meta_train_out_is_one_of_its_regions(cli, regions, catalog, own_copy):
    sources = [own_copy(regions[r.name], f"{r.name}.zarr") for r in catalog.sources()]
    before = _digest(sources[1])
    res = cli("meta-train", *each("--region", sources), "--out", sources[1], "--iterations", "2")
    _refused(res, sources[1], "--out is an input", before)


def test_adapt_out_is_its_model(cli, meta_model, regions, catalog, own_copy):
    model = own_copy(meta_model, "meta")
    before = _digest(model)
    region = regions[catalog.targets()[0].name]
    res = cli("adapt", "--model", model, "--region", region, "--out", model, "--shots", "3")
    _refused(res, model, "--out is an input", before)


def test_map_out_is_one_of_its_tiles(cli, adapted, target):
    tile = sorted(target["tiles"].glob("*.tif"))[0]
    before = _digest(tile)
    res = cli("map", "--model", adapted, "--tiles", target["tiles"], "--out", tile, "--overwrite")
    _refused(res, tile, "--out lies inside an input", before)


def test_suggest_labels_out_is_its_fields(cli, meta_model, target):
    before = _digest(target["fields"])
    res = cli(
        "suggest-labels",
        "--model",
        meta_model,
        "--fields",
        target["fields"],
        "--tiles",
        target["tiles"],
        "--budget",
        "3",
        "--out",
        target["fields"],
    )
    _refused(res, target["fields"], "--out is an input", before)


def _foreign_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my-project"
    folder.mkdir()
    (folder / "notes.txt").write_text("field visits, 2023")
    return folder


def test_meta_train_refuses_a_folder_it_did_not_write(cli, regions, catalog, tmp_path):
    folder = _foreign_folder(tmp_path)
    before = _digest(folder)
    sources = [regions[r.name] for r in catalog.sources()]
    res = cli("meta-train", *each("--region", sources), "--out", folder, "--iterations", "2")
    _refused(res, folder, "was not written by cropmeta", before)
    assert "--overwrite" in res.stderr


def test_map_refuses_a_folder_it_did_not_write(cli, adapted, target, tmp_path):
    folder = _foreign_folder(tmp_path)
    before = _digest(folder)
    res = cli("map", "--model", adapted, "--tiles", target["tiles"], "--out", folder)
    _refused(res, folder, "was not written by cropmeta", before)


# --- the rules around them --------------------------------------------------------------------


def test_out_containing_an_input_is_refused_even_with_overwrite(cli, target):
    folder = target["fields"].parent
    before = _digest(folder)
    res = _preprocess(cli, target, folder, "--overwrite")
    _refused(res, folder, "--out contains an input", before)


def test_overwrite_replaces_a_foreign_file_and_a_rerun_needs_none(cli, adapted, target, tmp_path):
    out = tmp_path / "map.tif"
    out.write_text("not a map")
    res = cli("map", "--model", adapted, "--tiles", target["tiles"], "--out", out)
    assert_refusal_kept(res, out, "not a map")
    res = cli("map", "--model", adapted, "--tiles", target["tiles"], "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert kind_of(out) == "crop-map"
    with rasterio.open(out) as src:
        assert "legend.csv" in src.tags()["CROPMETA_FILES"]
    again = cli("map", "--model", adapted, "--tiles", target["tiles"], "--out", out)
    assert again.exit_code == 0, again.output  # its own map and sidecars: replaced freely


def assert_refusal_kept(res, path: Path, text: str) -> None:
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert path.read_text() == text


def test_a_sidecar_cropmeta_did_not_write_is_kept(cli, adapted, target, tmp_path):
    out = tmp_path / "map.tif"
    legend = out.with_suffix(".legend.csv")
    legend.write_text("my own legend")
    res = cli("map", "--model", adapted, "--tiles", target["tiles"], "--out", out)
    assert_refusal_kept(res, legend, "my own legend")
    assert not out.exists()


def test_another_kind_of_cropmeta_output_is_refused(cli, meta_model, regions, catalog, own_copy):
    other = own_copy(meta_model, "other-meta")  # a meta-trained model, not an adapted one
    before = _digest(other)
    region = regions[catalog.targets()[0].name]
    res = cli("adapt", "--model", meta_model, "--region", region, "--out", other, "--shots", "3")
    expected = "is a meta-trained model written by cropmeta, not an adapted model"
    _refused(res, other, expected, before)


def test_every_output_kind_carries_its_marker(regions, meta_model, adapted, world, catalog):
    assert kind_of(world.parent) == "world"
    assert kind_of(regions[catalog.targets()[0].name]) == "region-dataset"
    assert kind_of(meta_model) == "meta-model"
    assert kind_of(adapted) == "adapted-model"


@pytest.mark.slow
def test_an_empty_folder_is_free_to_use(cli, adapted, meta_model, regions, catalog, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    region = regions[catalog.targets()[0].name]
    res = cli("adapt", "--model", meta_model, "--region", region, "--out", out, "--shots", "3")
    assert res.exit_code == 0, res.output
    assert kind_of(out) == "adapted-model"


# --- unwritable outputs: refused before any work, in every command ----------------------------


def _commands(world, regions, catalog, meta_model, adapted, out: Path) -> dict[str, list]:
    target = catalog.targets()[0]
    tiles, fields = catalog.path(target.tiles), catalog.path(target.labels)
    sources = [regions[r.name] for r in catalog.sources()]
    region = regions[target.name]
    return {
        "synth": ["synth", "--out", out, "--scale", "tiny", "--region", target.name],
        "preprocess": ["preprocess", "--catalog", world, "--region", target.name, "--out", out],
        "meta-train": ["meta-train", *each("--region", sources), "--out", out, "--iterations", "2"],
        "adapt": ["adapt", "--model", meta_model, "--region", region, "--out", out],
        "map": ["map", "--model", adapted, "--tiles", tiles, "--out", out],
        "suggest-labels": [
            "suggest-labels",
            *("--model", meta_model, "--fields", fields, "--tiles", tiles),
            *("--budget", "2", "--out", out),
        ],
        "evaluate": ["evaluate", "--catalog", world, "--out", out, "--iterations", "2"],
        "demo": ["demo", "--out", out, "--scale", "tiny", "--iterations", "2"],
    }


@pytest.mark.parametrize(
    "command",
    ["synth", "preprocess", "meta-train", "adapt", "map", "suggest-labels", "evaluate", "demo"],
)
def test_an_unwritable_out_is_refused_before_any_work(
    cli, world, regions, catalog, meta_model, adapted, tmp_path, command
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "out"
    args = _commands(world, regions, catalog, meta_model, adapted, out)[command]
    res = cli(*args)
    assert_one_line_error(res, out, "cannot write there")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_unwritable_checkpoint_folder_is_refused(cli, regions, catalog, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    sources = [regions[r.name] for r in catalog.sources()]
    out = tmp_path / "model"
    res = cli(
        "meta-train",
        *(*each("--region", sources), "--out", out, "--iterations", "2"),
        *("--checkpoint-dir", blocker / "ckpt"),
    )
    assert_one_line_error(res, out, "cannot write there")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(cli, meta_model, regions, catalog, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        region = regions[catalog.targets()[0].name]
        out = locked / "adapted"
        res = cli("adapt", "--model", meta_model, "--region", region, "--out", out)
        assert_one_line_error(res, out, "cannot write there")
    finally:
        locked.chmod(0o755)


def test_evaluate_with_missing_tiles_leaves_nothing(cli, world, tmp_path):
    copy = tmp_path / "world"
    shutil.copytree(world.parent, copy)
    shutil.rmtree(copy / "poltava" / "tiles")
    out = tmp_path / "evaluation"
    res = cli("evaluate", "--catalog", copy / "catalog.yaml", "--out", out, "--iterations", "2")
    assert_one_line_error(res, out, "poltava")
