"""Labels in the user's own words: `--taxonomy FILE` merged over the packaged taxonomy, without
touching the package, and `cropmeta taxonomy` listing the result."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import xarray as xr
from checks import assert_one_line_error

from cropmeta.errors import InputError
from cropmeta.taxonomy import PALETTE, load_taxonomy

USER = """
name: my-labels
classes:
  - name: rice              # new: the smallest free code, a colour of its own
    names: {de: Reis, local: paddy}
  - name: Maize             # the packaged class, by name: more local names
    names: {local: milho}
  - name: orchard           # new, with its code and colour
    code: 120
    colour: "#228b22"
"""


def write(tmp_path, text: str, name: str = "mine.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_user_file_adds_classes_and_local_names(tmp_path):
    base = load_taxonomy()
    merged = load_taxonomy(extra=write(tmp_path, USER))
    free = min(set(range(1, 255)) - {c.code for c in base.classes})
    rice = merged.resolve("reis")
    assert rice.name == "rice" and rice.code == free and rice.colour == PALETTE[free % 20]
    assert merged.resolve("PADDY") is rice and merged.resolve("rice") is rice
    maize = base.resolve("maize")
    assert merged.resolve("milho").code == maize.code == merged.resolve("Mais").code
    orchard = merged.resolve("orchard")
    assert (orchard.code, orchard.colour) == (120, "#228b22")
    assert merged.name == f"{base.name}+my-labels"
    assert base.resolve("reis") is None  # the packaged taxonomy is untouched


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("classes:\n  - {name: maize, code: 7}\n", "'maize' is code 1"),
        ("classes:\n  - {name: rice, code: 1}\n", "code 1 of 'rice' is 'maize'"),
        ("classes:\n  - {name: rice, names: {x: Mais}}\n", "'Mais' would mean both"),
        ("classes:\n  - {name: rice, code: 300}\n", "invalid entry at classes.0.code"),
        ("classes: []\n", "invalid entry at classes"),
        ("classes: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_user_file_that_contradicts_the_base_is_refused(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=problem) as raised:
        load_taxonomy(extra=path)
    assert raised.value.path == str(path)


@pytest.fixture()
def own_words(catalog, tmp_path):
    """A target's fields relabelled in the user's words: its commonest crop as 'Reis' (rice
    here)."""
    entry = catalog.targets()[0]
    fields = gpd.read_file(catalog.path(entry.labels))
    column = entry.label_column
    commonest = fields[column] == fields[column].mode()[0]
    assert commonest.sum() >= 4
    fields.loc[commonest, column] = "Reis"
    labels = tmp_path / "mine.gpkg"
    fields.to_file(labels)
    return catalog.path(entry.tiles), labels, column


def test_preprocess_reads_labels_in_the_users_words(cli, own_words, tmp_path):
    tiles, labels, column = own_words
    out = tmp_path / "t.zarr"
    args = ("preprocess", "--tiles", tiles, "--labels", labels, "--label-column", column)
    assert_one_line_error(cli(*args, "--out", out), out, "not in the taxonomy")
    user = write(tmp_path, USER)
    res = cli(*args, "--out", out, "--taxonomy", user)
    assert res.exit_code == 0, res.output
    classes = json.loads(xr.open_zarr(out).attrs["classes"])
    rice = next(c for c in classes if c["name"] == "rice")
    assert rice["local_names"] == ["Reis"] and rice["count"] >= 4
    bad = write(tmp_path, "classes:\n  - {name: rice, code: 1}\n", "bad.yaml")
    res = cli(*args, "--out", tmp_path / "u.zarr", "--taxonomy", bad)
    assert_one_line_error(res, tmp_path / "u.zarr", "bad.yaml")
    assert user.read_text(encoding="utf-8") == USER  # an input is never written
    res = cli(*args, "--out", user, "--taxonomy", user, "--overwrite")
    assert res.exit_code == 2 and user.read_text(encoding="utf-8") == USER


def test_taxonomy_lists_the_merged_classes(cli, world, tmp_path):
    res = cli("taxonomy", "--taxonomy", write(tmp_path, USER))
    assert res.exit_code == 0 and "rice" in res.stdout and "Reis" in res.stdout
    res = cli("taxonomy", "--catalog", world, "--taxonomy", write(tmp_path, USER), "--json")
    listed = json.loads(res.stdout)
    assert {"rice", "orchard", "maize"} <= {c["name"] for c in listed["classes"]}


def test_catalog_regions_read_labels_with_the_users_file_too(world, catalog, tmp_path):
    from cropmeta.ingest.catalog_regions import preprocess_catalog_region

    name = catalog.targets()[0].name
    ds = preprocess_catalog_region(world, name, user_taxonomy=write(tmp_path, USER))
    assert json.loads(ds.attrs["provenance"])["taxonomy"].endswith("+my-labels")
    with pytest.raises(InputError, match="would mean both"):
        bad = write(tmp_path, "classes:\n  - {name: rice, names: {x: Mais}}\n", "bad.yaml")
        preprocess_catalog_region(world, name, tmp_path / "t.zarr", user_taxonomy=bad)
    assert not (tmp_path / "t.zarr").exists()


def test_taxonomy_refuses_a_bad_file_in_one_line(cli, tmp_path):
    bad = write(tmp_path, "classes:\n  - {name: rice, code: 1}\n", "bad.yaml")
    res = cli("taxonomy", "--taxonomy", bad)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "bad.yaml" in lines[0]
