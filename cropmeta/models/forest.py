"""A fitted random forest held as tensors, so that a random forest can be an adapted model.

The random forest on the flattened series is the workhorse of operational crop mapping and, on
the far gee-tsda domains, the strongest method at k = 5 (BENCHMARKS.md). To save it without a
pickle and map it like a network, :meth:`ForestClassifier.from_sklearn` copies each fitted tree's
arrays (split feature, threshold, children, leaf class fractions) into buffers that safetensors
stores and the bundle's JSON describes; prediction walks the trees with tensor operations.

It reproduces scikit-learn's ``RandomForestClassifier.predict_proba`` exactly: inputs are cast
to float32 and split as sklearn's tree code splits them (a float32 value against a float64
threshold, here against that threshold rounded down to float32: the same decision), a missing
value follows the tree's ``missing_go_to_left``, and the trees' leaf fractions are summed one
tree after another in float64 before the division by the number of trees. Hand-written rather
than loaded with ``skops``: the house rule is tensors plus a JSON config.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import nn

from cropmeta.models.sizes import MAX_TREE_DEPTH, Shapes

#: The tensors a forest stores, by name: one row per node (all trees' nodes end to end), or
#: one per tree (``roots``). ``branches`` holds each node's (right, left) child, a leaf's being
#: itself; ``threshold`` is sklearn's float64 threshold rounded down to float32, which splits
#: float32 inputs exactly as the float64 comparison does.
FOREST_TENSORS = ("feature", "threshold", "branches", "missing_left", "value", "roots")
WALK_PAIRS = 2**18
DTYPES = {"threshold": torch.float32, "value": torch.float64, "missing_left": torch.bool}


class ForestHeadConfig(BaseModel):
    """A random forest as the whole model: it reads the flattened normalised series itself, so
    the bundle's ``encoder`` is not used."""

    kind: Literal["forest"] = "forest"
    memory: Shapes = Field(
        default_factory=dict, description="name → shape of each stored tree tensor"
    )
    depth: int = Field(
        0, ge=0, le=MAX_TREE_DEPTH, description="the deepest leaf's depth: steps of the walk"
    )


class ForestHead(nn.Module):
    """The trees' buffers (see :data:`FOREST_TENSORS`) and the walk from roots to leaves."""

    def __init__(self, cfg: ForestHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        for name in FOREST_TENSORS:
            shape = cfg.memory.get(name, {"value": [0, 0], "branches": [0, 2]}.get(name, [0]))
            self.register_buffer(name, torch.zeros(shape, dtype=DTYPES.get(name, torch.int64)))

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        """Class probabilities (sample, class), float64, as sklearn's ``predict_proba``.

        Samples go in chunks of :data:`WALK_PAIRS` (sample, tree) pairs, whose indexes stay in
        the CPU's cache (about 2× faster than 16384 pixels at once, a map's default batch).
        """
        chunk = max(1, WALK_PAIRS // max(1, len(self.roots)))
        x = flat.to(torch.float32)
        leaf = self.branches[:, 0] == torch.arange(len(self.branches))
        parts = [self._walk(x[i : i + chunk], leaf) for i in range(0, len(x), chunk)]
        return (
            torch.cat(parts) if parts else torch.zeros(0, self.value.shape[1], dtype=torch.float64)
        )

    def _walk(self, x: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """Every (sample, tree) pair walks ``depth`` steps in one flat index space: a gather of
        the split feature's value, a comparison, and a gather of the child. Every third step
        the pairs that reached a leaf are set aside (a third less time on the demo's forests)."""
        n, n_trees = len(x), len(self.roots)
        values, branches = x.reshape(-1), self.branches.reshape(-1)
        missing = bool(x.isnan().any())
        node = self.roots.repeat(n)
        pair = torch.arange(len(node))  # the pairs still walking, their nodes and row offsets
        at, row = node, torch.arange(n).repeat_interleave(n_trees) * x.shape[1]
        for step in range(self.cfg.depth):  # leaves are their own children, so they stay put
            v = values[row + self.feature[at]]
            go_left = v <= self.threshold[at]
            if missing:
                go_left = torch.where(v.isnan(), self.missing_left[at], go_left)
            at = branches[2 * at + go_left.long()]
            if step % 3 == 2:
                node[pair] = at
                walking = ~leaf[at]
                pair, at, row = pair[walking], at[walking], row[walking]
        node[pair] = at
        node = node.view(n, n_trees)
        total = torch.zeros(n, self.value.shape[1], dtype=torch.float64)
        for tree in range(n_trees):  # tree by tree, as sklearn sums them
            total += self.value[node[:, tree]]
        return total / n_trees


class ForestClassifier(nn.Module):
    """A random forest with the networks' interface: ``model(x, doy)`` gives log-probabilities
    (sample, class), whose softmax is the forest's probabilities and whose argmax its class."""

    def __init__(self, cfg: ForestHeadConfig) -> None:
        super().__init__()
        self.head = ForestHead(cfg)

    def forward(self, x: torch.Tensor, doy: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities of series ``x`` (sample, step, band); ``doy`` is not read (the
        forest sees the steps of the bundle's fixed temporal grid)."""
        return self.head(x.flatten(1)).log().to(torch.float32)

    @classmethod
    def from_sklearn(cls, forest, n_classes: int) -> ForestClassifier:
        """The fitted ``RandomForestClassifier`` ``forest`` (single output, labels 0..n-1)."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in FOREST_TENSORS}
        offset = 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            index = np.arange(tree.node_count) + offset
            leaf = tree.children_left < 0
            parts["feature"].append(np.where(leaf, 0, tree.feature))
            parts["threshold"].append(float32_at_most(np.where(leaf, 0.0, tree.threshold)))
            left = np.where(leaf, index, tree.children_left + offset)
            right = np.where(leaf, index, tree.children_right + offset)
            parts["branches"].append(np.stack([right, left], 1))
            parts["missing_left"].append(tree.missing_go_to_left.astype(bool))
            value = np.zeros((tree.node_count, n_classes))
            value[:, forest.classes_.astype(int)] = tree.value[:, 0, :]
            parts["value"].append(value)
            parts["roots"].append(np.array([offset]))
            offset += tree.node_count
        arrays = {name: np.concatenate(p) for name, p in parts.items()}
        depth = max(e.tree_.max_depth for e in forest.estimators_)
        cfg = ForestHeadConfig(memory={k: list(a.shape) for k, a in arrays.items()}, depth=depth)
        model = cls(cfg)
        model.head.load_state_dict({k: torch.from_numpy(a) for k, a in arrays.items()})
        return model.eval()


def float32_at_most(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold: for a float32 input ``v``,
    ``v <= t`` exactly when ``v <= float32_at_most(t)``."""
    t32 = threshold.astype(np.float32)
    return np.where(t32 > threshold, np.nextafter(t32, np.float32(-np.inf)), t32)
