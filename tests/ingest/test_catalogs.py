"""The shipped catalogs validate and agree with what they describe."""

from cropmeta.catalog import load_catalog
from cropmeta.taxonomy import CATALOG_DIR


def test_demo_world_catalog_matches_the_generator(catalog):
    shipped = load_catalog(CATALOG_DIR / "demo-world.yaml")
    assert [r.name for r in shipped.regions] == [r.name for r in catalog.regions]
    for ours, generated in zip(shipped.regions, catalog.regions, strict=True):
        assert (ours.role, ours.label_column, ours.id_column, ours.crs) == (
            generated.role,
            generated.label_column,
            generated.id_column,
            generated.crs,
        )
        assert ours.tiles == f"../demo-out/world/{generated.tiles}"
        assert ours.labels == f"../demo-out/world/{generated.labels}"


def test_every_shipped_catalog_validates():
    names = sorted(p.name for p in CATALOG_DIR.glob("*.yaml") if p.name != "taxonomy.yaml")
    assert names == ["demo-world.yaml", "shared-data.yaml"]
    for name in names:
        cat = load_catalog(CATALOG_DIR / name)
        assert cat.load_taxonomy().classes and cat.regions
