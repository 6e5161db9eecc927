"""Upper bounds for the sizes a model config may ask for.

A config read from a file decides how much memory building the model takes before a single
weight is read, so every size in it is bounded: a damaged or hostile ``config.json`` gets a
one-line refusal instead of exhausting memory.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_WIDTH = 4096  # channels, hidden units, embedding and token widths
MAX_COUNT = 64  # layers, attention heads, kernel size, tree depth
MAX_VALUES = 2**28  # elements of one stored tensor (1 GiB of float32)
MAX_TREE_DEPTH = 10_000  # steps of a saved forest's walk

Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]


def _bounded(shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    for name, shape in shapes.items():
        if any(n < 0 for n in shape) or math.prod(shape) > MAX_VALUES:
            raise ValueError(f"tensor {name!r} of shape {shape} is negative or above {MAX_VALUES}")
    return shapes


#: name → shape of stored tensors, each at most :data:`MAX_VALUES` elements.
Shapes = Annotated[dict[str, list[int]], AfterValidator(_bounded)]
