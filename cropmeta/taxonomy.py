"""The shared crop taxonomy, and a user's own taxonomy file merged over it (``--taxonomy``).

The taxonomy maps each region's local label names to shared codes, so that tasks drawn from
several regions agree on what "maize" is.


Labels come in the user's words ("Reis", "lucerne", "orchard"). The packaged taxonomy
(``data_catalog/taxonomy.yaml``, or a catalog's own) knows the demo's and the shared data sets'
crops; a user extends it without touching the package, with a YAML file in the same format
whose classes either

* name a class the base already has (by ``name``): their local ``names`` are added to it (a
  ``code``, if given, must be the base's), or
* are new: they get the ``code`` given (one the base does not use) or else the smallest free
  one, and a colour of their own.

A local name that would then mean two classes is an error, not a guess. The merged taxonomy's
classes are recorded in every region dataset prepared with it, so later stages need no file.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from cropmeta.errors import InputError, first_error, read_yaml

#: The repository's ``data_catalog/`` folder (the package is installed in editable mode).
CATALOG_DIR = Path(
    os.environ.get("CROPMETA_CATALOG_DIR", Path(__file__).resolve().parents[1] / "data_catalog")
)

#: Colours of new classes without one, by code (matplotlib's tab20, a qualitative palette).
PALETTE = (
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
)  # fmt: skip
CODES = range(1, 255)  # a map's pixel values: 0 is nodata, 255 is spare


def label_key(label: str) -> str | None:
    """How a local name is looked up: stripped and case-folded; None for a number (numeric
    labels mean other classes in other data sets and are looked up per data set only)."""
    key = str(label).strip().casefold()
    return None if key.replace(".", "").isdigit() else key


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
                if (key := label_key(label)) is not None:
                    table[key] = c
        return table

    def resolve(self, local_name: str) -> CropClass | None:
        """The shared class for a local label name, or None when the taxonomy does not know it."""
        return self._lookup.get(str(local_name).strip().casefold())

    def by_code(self, code: int) -> CropClass:
        return next(c for c in self.classes if c.code == code)

    def local_name(self, code: int, language: str) -> str:
        c = self.by_code(code)
        return c.names.get(language, c.name)


def load_taxonomy(
    path: str | os.PathLike[str] | None = None, extra: str | os.PathLike[str] | None = None
) -> Taxonomy:
    """Load a taxonomy YAML (by default the shared one in ``data_catalog/taxonomy.yaml``), with
    a user's taxonomy file ``extra`` merged over it (:func:`merged_taxonomy`)."""
    p = Path(path) if path is not None else CATALOG_DIR / "taxonomy.yaml"
    try:
        taxonomy = Taxonomy.model_validate(read_yaml(p))
    except ValidationError as exc:
        raise InputError(p, first_error(exc)) from None
    if extra is None:
        return taxonomy
    return merged_taxonomy(taxonomy, extra)


class UserClass(BaseModel):
    """One class of a user's taxonomy file."""

    name: str = Field(min_length=1)
    code: int | None = Field(None, ge=1, le=254, description="default: the smallest free code")
    colour: str | None = None
    names: dict[str, str] = Field(default_factory=dict, description="local name by tag")


class UserTaxonomy(BaseModel):
    """A user's taxonomy file: a name and classes."""

    name: str = "user"
    classes: list[UserClass] = Field(min_length=1)


def merged_taxonomy(base: Taxonomy, path: str | os.PathLike[str]) -> Taxonomy:
    """``base`` with the user's taxonomy file ``path`` merged over it (module docstring)."""
    path = Path(path)
    try:
        extra = UserTaxonomy.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise InputError(path, first_error(exc)) from None
    classes = {c.code: c.model_copy(deep=True) for c in base.classes}
    by_name = {c.name.casefold(): c.code for c in base.classes}
    for entry in extra.classes:
        code = by_name.get(entry.name.casefold())
        if code is not None and entry.code not in (None, code):
            raise InputError(
                path, f"{entry.name!r} is code {code} in taxonomy {base.name!r}, not {entry.code}"
            )
        if code is None:
            code = entry.code if entry.code is not None else _free_code(classes, path)
            if code in classes:
                raise InputError(
                    path,
                    f"code {code} of {entry.name!r} is {classes[code].name!r} in taxonomy "
                    f"{base.name!r}; give another code or leave it out",
                )
            colour = PALETTE[code % len(PALETTE)]
            classes[code] = CropClass(code=code, name=entry.name, colour=colour)
            by_name[entry.name.casefold()] = code
        merged = classes[code]
        merged.names = {**merged.names, **entry.names}
        merged.colour = entry.colour or merged.colour
    taxonomy = Taxonomy(
        name=f"{base.name}+{extra.name}", classes=sorted(classes.values(), key=lambda c: c.code)
    )
    _refuse_ambiguous_names(taxonomy, path)
    return taxonomy


def _free_code(classes: dict[int, CropClass], path: Path) -> int:
    free = [c for c in CODES if c not in classes]
    if not free:
        raise InputError(path, f"no free class code left (codes {CODES.start}-{CODES.stop - 1})")
    return free[0]


def _refuse_ambiguous_names(taxonomy: Taxonomy, path: Path) -> None:
    """A local name (case-insensitive; numbers are per data set and exempt) must mean one
    class."""
    meaning: dict[str, CropClass] = {}
    for c in taxonomy.classes:
        for label in (c.name, *c.names.values()):
            key = label_key(label)
            if key is None:
                continue
            other = meaning.setdefault(key, c)
            if other.code != c.code:
                raise InputError(
                    path, f"the name {label!r} would mean both {other.name!r} and {c.name!r}"
                )
