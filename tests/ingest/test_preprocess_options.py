"""One typed model of preprocessing options for the CLI, the Python API and catalogs (issue 20)."""

import json

import numpy as np
import pytest
from pydantic import ValidationError

from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.ingest.options import PreprocessOptions
from cropmeta.ingest.prepare import TemporalGrid


def test_options_object_and_keywords_prepare_alike(world, catalog):
    name = catalog.targets()[0].name
    chosen = PreprocessOptions(statistic="median", min_pixels=6)
    by_object = preprocess_catalog_region(world, name, None, chosen)
    by_keywords = preprocess_catalog_region(world, name, statistic="median", min_pixels=6)
    np.testing.assert_array_equal(by_object["x"].values, by_keywords["x"].values)
    recorded = json.loads(by_object.attrs["provenance"])
    assert (recorded["statistic"], recorded["min_pixels"]) == ("median", 6)
    plain = preprocess_catalog_region(world, name)
    assert not np.array_equal(plain["x"].values, by_object["x"].values)  # the options count


def test_a_misspelt_or_bad_option_is_refused(world, catalog):
    name = catalog.targets()[0].name
    with pytest.raises(ValidationError, match="statistc"):
        preprocess_catalog_region(world, name, statistc="median")
    with pytest.raises(ValidationError, match="min_pixels"):
        PreprocessOptions().updated(min_pixels=0)


def test_the_catalog_entry_completes_the_options(world, catalog):
    entry = catalog.targets()[0]
    season = TemporalGrid(start_doy=90, end_doy=270, step=15)
    given = preprocess_catalog_region(world, entry.name, grid=season)
    assert given.sizes["time"] == len(season)  # a given grid wins over the catalog's season
    default = preprocess_catalog_region(world, entry.name)
    expected = TemporalGrid(**entry.season) if entry.season else TemporalGrid()
    assert default.sizes["time"] == len(expected)
