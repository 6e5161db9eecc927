"""Deterministic synthetic multi-region Sentinel-2 world, written as real files.

``make_world(out)`` writes per-region GeoTIFF time series (L2A-like, with SCL), labelled field
polygons (GeoPackage, local crop names) and a ``catalog.yaml`` — the way a user's data arrive —
so every part of cropmeta can be exercised and benchmarked without downloads.
"""

from cropmeta.synth.regions import REGION_NAMES
from cropmeta.synth.world import make_world

__all__ = ["REGION_NAMES", "make_world"]
