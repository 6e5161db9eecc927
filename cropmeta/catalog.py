"""Region catalogs and the shared crop taxonomy (``data_catalog/``), validated with pydantic.

A catalog lists regions — where their tiles and labelled fields are, which column holds the
label, and whether the region is a data-rich *source* or a sparse *target*. The taxonomy maps
each region's local label names to shared codes so that tasks drawn from several regions agree
on what "maize" is.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from cropmeta.errors import InputError

#: The repository's ``data_catalog/`` folder (the package is installed in editable mode).
CATALOG_DIR = Path(
    os.environ.get("CROPMETA_CATALOG_DIR", Path(__file__).resolve().parents[1] / "data_catalog")
)


class CropClass(BaseModel):
    """One shared crop class: its code (the map's pixel value), name, colour and local names."""

    code: int = Field(ge=1, le=254)
    name: str
    colour: str = "#808080"
    names: dict[str, str] = Field(default_factory=dict, description="local name by language tag")


class Taxonomy(BaseModel):
    """Shared crop codes with the local names that map onto them."""

    name: str
    classes: list[CropClass]

    @cached_property
    def _lookup(self) -> dict[str, CropClass]:
        table: dict[str, CropClass] = {}
        for c in self.classes:
            for label in (c.name, *c.names.values()):
                table[label.casefold()] = c
        return table

    def resolve(self, local_name: str) -> CropClass | None:
        """The shared class for a local label name, or None when the taxonomy does not know it."""
        return self._lookup.get(str(local_name).strip().casefold())

    def by_code(self, code: int) -> CropClass:
        return next(c for c in self.classes if c.code == code)

    def local_name(self, code: int, language: str) -> str:
        c = self.by_code(code)
        return c.names.get(language, c.name)


class RegionEntry(BaseModel):
    """Where one region's data are; relative paths are relative to the catalog file."""

    name: str
    role: Literal["source", "target"]
    tiles: str
    labels: str
    label_column: str
    id_column: str | None = None
    crs: str | None = Field(None, description="informational; the tiles' own CRS is authoritative")
    description: str = ""


class Catalog(BaseModel):
    """A set of regions and the taxonomy their labels use."""

    name: str
    taxonomy: str = "taxonomy.yaml"
    regions: list[RegionEntry]
    root: Path = Field(default=Path("."), exclude=True)

    def region(self, name: str) -> RegionEntry:
        for r in self.regions:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.regions)
        raise InputError(self.root, f"no region named {name!r} in the catalog (known: {known})")

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()

    def load_taxonomy(self) -> Taxonomy:
        local = self.root / self.taxonomy
        return load_taxonomy(local if local.exists() else CATALOG_DIR / self.taxonomy)

    def sources(self) -> list[RegionEntry]:
        return [r for r in self.regions if r.role == "source"]

    def targets(self) -> list[RegionEntry]:
        return [r for r in self.regions if r.role == "target"]


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a YAML mapping at the top level")
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    return f"invalid entry at {where}: {err['msg']}"


def load_taxonomy(path: str | os.PathLike[str] | None = None) -> Taxonomy:
    """Load a taxonomy YAML; by default the shared one in ``data_catalog/taxonomy.yaml``."""
    p = Path(path) if path is not None else CATALOG_DIR / "taxonomy.yaml"
    try:
        return Taxonomy.model_validate(_read_yaml(p))
    except ValidationError as exc:
        raise InputError(p, _first_error(exc)) from None


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Load and validate a region catalog YAML."""
    p = Path(path)
    try:
        cat = Catalog.model_validate(_read_yaml(p))
    except ValidationError as exc:
        raise InputError(p, _first_error(exc)) from None
    cat.root = p.resolve().parent
    return cat


def write_catalog(catalog: Catalog, path: str | os.PathLike[str]) -> None:
    """Write a catalog as YAML (paths stay as given, relative to the file)."""
    data = catalog.model_dump(mode="json")
    Path(path).write_text(
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
