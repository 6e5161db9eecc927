"""Every command documents itself and takes --seed where a seed changes something; catalogs
work, bad ones fail cleanly."""

import pytest
import rasterio

#: commands with random draws (worlds, pixels, tasks, supports, label picks), and the others
SEEDED = ["synth", "preprocess", "meta-train", "adapt", "suggest-labels", "evaluate", "demo"]
UNSEEDED = ["map", "preview", "taxonomy", "learners"]


@pytest.mark.parametrize("command", SEEDED + UNSEEDED)
def test_every_command_has_help_and_a_seed_only_where_it_counts(cli, command):
    res = cli(command, "--help")
    assert res.exit_code == 0
    assert ("--seed" in res.stdout) == (command in SEEDED)
    assert "--threads" in res.stdout or command in ("taxonomy", "learners")


def test_synth_cli_writes_one_region(cli, tmp_path):
    res = cli(
        "synth",
        "--out",
        tmp_path / "w",
        "--scale",
        "tiny",
        "--region",
        "nebraska",
        "--tile-size",
        "64",
        "--seed",
        "3",
    )
    assert res.exit_code == 0, res.output
    tifs = sorted((tmp_path / "w" / "nebraska" / "tiles").glob("*.tif"))
    with rasterio.open(tifs[0]) as src:
        assert (src.width, src.height) == (64, 64)
        assert src.crs.to_epsg() == 32614


def test_preprocess_from_catalog(cli, world, tmp_path):
    out = tmp_path / "p.zarr"
    res = cli("preprocess", "--catalog", world, "--region", "poltava", "--out", out)
    assert res.exit_code == 0, res.output
    assert out.is_dir()


def test_preprocess_unknown_catalog_region(cli, world, tmp_path):
    out = tmp_path / "p.zarr"
    res = cli("preprocess", "--catalog", world, "--region", "atlantis", "--out", out)
    assert res.exit_code == 2 and "no region named 'atlantis'" in res.stderr
    assert not out.exists()


def test_preprocess_invalid_catalog(cli, tmp_path):
    bad = tmp_path / "catalog.yaml"
    bad.write_text("name: x\nregions:\n  - name: a\n    role: sauce\n")
    out = tmp_path / "p.zarr"
    res = cli("preprocess", "--catalog", bad, "--region", "a", "--out", out)
    assert res.exit_code == 2
    assert res.stderr.strip().startswith(f"error: {bad}: invalid entry at regions.0")
    assert not out.exists()
